"""Part 1: load the assignment's model (Qwen/Qwen3-4B in the default pack) and its tokenizer."""

import pytest

from grader.judge.rubric.plugin import hint

# AutoModelForCausalLM gives the family's *ForCausalLM (Qwen3ForCausalLM); AutoModel gives its base model
# (Qwen3Model, no LM head): the same decoder layers (at model.layers instead of model.model.layers) and the
# same residual stream.


@pytest.mark.reference_answerable
@pytest.mark.check("p1.model_loaded", "The model and its tokenizer are loaded")
@pytest.mark.points(5)
def test_model_loaded(ctx, note):
    model, tokenizer = ctx.execution.model, ctx.execution.tokenizer
    pack, family = ctx.assignment, ctx.assignment.family
    model_id, n_layers = pack.model.id, pack.n_layers
    assert model is not None, (
        "No Hugging Face model was loaded." + hint(" Part 1 asks for "
        f"AutoModelForCausalLM.from_pretrained(\"{model_id}\").")
    )
    classes = (*family.causal_lm, *family.base_models)
    assert model.get("class") in classes and model.get("num_layers") == n_layers, (
        f"The loaded model is a {model.get('class')} with {model.get('num_layers')} layers "
        f"({model.get('name_or_path')});" + hint(f" Part 1 asks for {model_id}, a {family.causal_lm[0]} with {n_layers} "
                                                 f"layers (AutoModelForCausalLM; AutoModel's {family.base_models[0]} has "
                                                 "the same layers).")
    )
    assert tokenizer is not None, (
        "The model was loaded but no tokenizer was loaded with from_pretrained;" + hint(" Part 1 asks for "
        f"AutoTokenizer.from_pretrained(\"{model_id}\").")
    )
    base = " (the base model without the LM head, from AutoModel: the same decoder layers)" \
        if model["class"] in family.base_models else ""
    note(f"{model['class']}{base} ({model.get('name_or_path')}) in {model.get('dtype')} on {model.get('device')}; "
         f"tokenizer {tokenizer.get('class')}.")
