"""Part 5: per layer, PCA to 3 components, project the tokens (3 x N), normalise, animate tokens.gif."""

import pytest

from grader.judge.evidence import answer_body
from grader.judge.rubric.plugin import hint, show_to_ta, ta_check


def _projections(ctx):
    proj = ctx.comparison.projections
    NUM_TOKENS = ctx.assignment.n_tokens
    assert proj is not None, (
        f"No projections were found after the notebook ran: expected, for each of the {ctx.assignment.n_layers} layers, a 3 x N "
        f"tensor or array (N = {NUM_TOKENS} tokens), e.g. a dict indexed by layer number."
        + (f" {ctx.execution.reason}." if ctx.execution.status != "ok" else "")
    )
    return proj


@pytest.mark.reference_answerable
@pytest.mark.check("p5.projection_shape", "A 3 x N projection for each layer")
@pytest.mark.points(5)
def test_projection_shape(ctx, note):
    proj = _projections(ctx)
    NUM_LAYERS, NUM_TOKENS = ctx.assignment.n_layers, ctx.assignment.n_tokens
    shapes = ", ".join(str(s) for s in proj.shapes)
    assert proj.layout != "Nx3", (
        f"`{proj.variable}` holds {proj.layout[0]} x {proj.layout[-1]} arrays (shape {shapes}): tokens in rows. "
        f"The assignment asks for 3 x N (3 x {NUM_TOKENS}):" + hint(" transpose them.")
    )
    assert proj.n_layers == NUM_LAYERS, f"`{proj.variable}` has {proj.n_layers} layers; expected {NUM_LAYERS}."
    assert proj.shape_ok, f"`{proj.variable}` has shapes {shapes}; expected 3 x {NUM_TOKENS} for each layer."
    note(f"`{proj.variable}`: {NUM_LAYERS} layers of shape {proj.shapes[0]}.")


@pytest.mark.reference_answerable
@pytest.mark.check("p5.unit_norm", "Each projected token has unit norm")
@pytest.mark.points(5)
def test_unit_norm(ctx):
    proj = _projections(ctx)
    dev = proj.unit_norm_max_dev
    assert dev is not None and dev <= proj.unit_norm_tol, (
        f"Token norms in `{proj.variable}` differ from 1 by up to {dev:.3g}." + hint(" Step 3 asks you to divide "
        "each token's 3-D projection by its own norm so that it lies on the unit sphere.")
    )


@pytest.mark.reference_answerable
@pytest.mark.check("p5.projection_match", "Projections match the reference PCA (up to the sign of each component)")
@pytest.mark.points(15)
def test_projection_match(ctx, note):
    proj = _projections(ctx)
    against = ("the exact PCA of your own captures" if proj.reference == "own_captures"
               else "the reference projections")
    judged = [lp for lp in proj.layers if lp.median_deg is not None]
    assert judged, f"None of the layers of `{proj.variable}` could be compared: {proj.layers[0].note if proj.layers else ''}"
    failed = [lp for lp in proj.layers if not lp.passed]
    notes = [lp for lp in proj.layers if lp.passed and lp.note]
    if not failed:  # layers that are missing cost p5.projection_shape, not this check too
        note(f"All {len(proj.layers)} layers match {against}; the worst layer's 95th-percentile token angle is "
             f"{proj.worst[0].p95_deg:.2f} degrees." + (f" Layer {notes[0].layer}: {notes[0].note}." if notes else ""))
        return
    worst = sorted(failed, key=lambda lp: -(lp.p95_deg or 1e9))[:3]
    detail = "; ".join(
        f"layer {lp.layer}: median {lp.median_deg:.1f} deg, 95th percentile {lp.p95_deg:.1f} deg"
        if lp.median_deg is not None else f"layer {lp.layer}: {lp.note}" for lp in worst)
    rotated = next((lp.note for lp in failed if lp.note and lp.rotated), None)  # what is wrong, not a hint
    pytest.fail(
        f"{len(failed)} of {len(proj.layers)} layers differ from {against} after matching the sign of each "
        f"component ({detail})." + (f" {rotated[0].upper() + rotated[1:]}." if rotated else
        hint(" Check that you centre the data (subtract the mean token), take the top-3 right singular vectors "
             "(the principal directions in hidden space), and project every token onto them."))
    )


@pytest.mark.reference_answerable
@pytest.mark.check("p5.gif", "tokens.gif with one frame per layer")
@pytest.mark.points(5)
def test_gif(ctx, note):
    gif = ctx.evidence.gif
    NUM_LAYERS = ctx.assignment.n_layers
    assert gif.error is None, gif.error[0].upper() + gif.error[1:] + "."
    assert gif.frames == NUM_LAYERS, (
        f"{gif.name} has {gif.frames} frame{'s' if gif.frames != 1 else ''}; expected one per layer ({NUM_LAYERS})."
        + hint(" The provided plotting code saves a frame for every layer.")
    )
    note(f"{gif.name}: {gif.frames} frames, {gif.size[0]} x {gif.size[1]} px"
         + (" (attached, not written by the notebook)." if gif.origin == "attachment" else "."))


NO_ANSWER = ("No written answer was found:" + hint(" add a markdown cell after your plots with 1-2 sentences on "
                                                   "what happens to the tokens as they move through the layers."))


@ta_check("p5.explanation", "1-2 sentences on what happens to the tokens (graded by a TA)", points=5)
def test_explanation(ctx, note):
    show_to_ta(answer_body(ctx.evidence.answer), NO_ANSWER, note, "Answer")  # "Answer: ..." once, not "Answer: **Answer:** ..."
