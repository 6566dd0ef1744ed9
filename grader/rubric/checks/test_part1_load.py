"""Part 1: load Qwen/Qwen3-4B and its tokenizer."""

import pytest

from grader.rubric.plugin import hint
from grader.spec.assignment import NUM_LAYERS

# AutoModelForCausalLM gives Qwen3ForCausalLM; AutoModel gives the base Qwen3Model (no LM head): the same
# decoder layers (at model.layers instead of model.model.layers) and the same residual stream.
MODEL_CLASSES = ("Qwen3ForCausalLM", "Qwen3Model")


@pytest.mark.reference_answerable
@pytest.mark.check("p1.model_loaded", "Qwen3-4B and its tokenizer are loaded")
@pytest.mark.points(5)
def test_model_loaded(ctx, note):
    model, tokenizer = ctx.execution.model, ctx.execution.tokenizer
    assert model is not None, (
        "No Hugging Face model was loaded." + hint(" Part 1 asks for "
        "AutoModelForCausalLM.from_pretrained(\"Qwen/Qwen3-4B\").")
    )
    assert model.get("class") in MODEL_CLASSES and model.get("num_layers") == NUM_LAYERS, (
        f"The loaded model is a {model.get('class')} with {model.get('num_layers')} layers "
        f"({model.get('name_or_path')});" + hint(f" Part 1 asks for Qwen/Qwen3-4B, a Qwen3ForCausalLM with {NUM_LAYERS} "
                                                 "layers (AutoModelForCausalLM; AutoModel's Qwen3Model has the same layers).")
    )
    assert tokenizer is not None, (
        "The model was loaded but no tokenizer was loaded with from_pretrained;" + hint(" Part 1 asks for "
        "AutoTokenizer.from_pretrained(\"Qwen/Qwen3-4B\").")
    )
    base = " (the base model without the LM head, from AutoModel: the same decoder layers)" \
        if model["class"] == "Qwen3Model" else ""
    note(f"{model['class']}{base} ({model.get('name_or_path')}) in {model.get('dtype')} on {model.get('device')}; "
         f"tokenizer {tokenizer.get('class')}.")
