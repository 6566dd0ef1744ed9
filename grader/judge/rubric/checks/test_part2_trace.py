"""Part 2: print the model and draw a decoder-layer diagram."""

import pytest

from grader.judge.rubric.plugin import hint, show_to_ta, ta_check


def _modules(family) -> dict[str, str]:
    """The decoder layer's norm, attention and MLP modules, as print(model) names them."""
    return {site: family.module_of(site) for site in ("ln1_out", "attn_out", "ln2_out", "mlp_out")}


@pytest.mark.check("p2.model_printed", "The printed model shows the decoder layer's modules")
@pytest.mark.points(5)
def test_model_printed(ctx):
    family = ctx.assignment.family
    m = _modules(family)
    assert ctx.evidence.printed_model, (
        "No cell output shows the model's structure." + hint(f" Part 2 asks you to print(model): the output lists "
        f"{family.decoder_layer} with {m['attn_out']}, {m['mlp_out']}, {m['ln1_out']} and {m['ln2_out']}.")
    )


def no_diagram(family) -> str:
    m = _modules(family)
    return ("No diagram image was found: attach it to your submission as a PNG/JPG/PDF, or embed it in a "
            "markdown cell." + hint(f" It should show the residual stream, {m['ln1_out']} -> {m['attn_out']} -> skip "
                                    f"add -> {m['ln2_out']} -> {m['mlp_out']} -> skip add."))


@ta_check("p2.diagram", "Diagram of a decoder layer (graded by a TA)", points=10)
def test_diagram(ctx, note):
    show_to_ta(ctx.evidence.diagrams, no_diagram(ctx.assignment.family), note, "Diagram to review")
