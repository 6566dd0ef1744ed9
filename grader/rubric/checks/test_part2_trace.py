"""Part 2: print the model and draw a decoder-layer diagram."""

import pytest

from grader.rubric.plugin import hint, show_to_ta, ta_check


@pytest.mark.check("p2.model_printed", "The printed model shows the decoder layer's modules")
@pytest.mark.points(5)
def test_model_printed(ctx):
    assert ctx.evidence.printed_model, (
        "No cell output shows the model's structure." + hint(" Part 2 asks you to print(model): the output lists "
        "Qwen3DecoderLayer with self_attn, mlp, input_layernorm and post_attention_layernorm.")
    )


NO_DIAGRAM = (
    "No diagram image was found: attach it to your submission as a PNG/JPG/PDF, or embed it in a "
    "markdown cell." + hint(" It should show the residual stream, input_layernorm -> self_attn -> skip add -> "
                            "post_attention_layernorm -> mlp -> skip add.")
)


@ta_check("p2.diagram", "Diagram of a decoder layer (graded by a TA)", points=10)
def test_diagram(ctx, note):
    show_to_ta(ctx.evidence.diagrams, NO_DIAGRAM, note, "Diagram to review")
