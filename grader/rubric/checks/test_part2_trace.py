"""Part 2: print the model and draw a decoder-layer diagram."""

import pytest


@pytest.mark.check("p2.model_printed", "The printed model shows the decoder layer's modules")
@pytest.mark.points(5)
def test_model_printed(ctx):
    assert ctx.evidence.printed_model, (
        "No cell output shows the model's structure. Part 2 asks you to print(model): the output lists "
        "Qwen3DecoderLayer with self_attn, mlp, input_layernorm and post_attention_layernorm."
    )


@pytest.mark.check("p2.diagram", "Diagram of a decoder layer (graded by a TA)")
@pytest.mark.points(10)
@pytest.mark.manual
def test_diagram(ctx, note):
    assert ctx.evidence.diagrams, (
        "No diagram image was found: attach it to your submission as a PNG/JPG/PDF, or embed it in a "
        "markdown cell. It should show the residual stream, input_layernorm -> self_attn -> skip add -> "
        "post_attention_layernorm -> mlp -> skip add."
    )
    note("Diagram to review: " + ", ".join(ctx.evidence.diagrams))
