"""Part 3: forward hooks that save the residual stream entering each decoder layer (36 in Qwen3-4B)."""

import pytest

from grader.judge.hooks import layer_ranges
from grader.judge.rubric.plugin import hint
from grader.spec.sites import describe


def _layout_words(layout: str) -> str:
    """How the grader read the captures: 'a dict keyed by layer numbers', 'a list in layer order', ..."""
    return {"list": "a list in layer order", "tuple": "a tuple in layer order",
            "stacked": "one stacked array, layers first"}.get(layout, f"a {layout}")


def _student_hooks(ctx):
    """The student's own hook registrations; fails the check when there are none."""
    if any(f.get("output_hidden_states") for f in ctx.execution.forwards):
        message = ("No forward hooks were registered: you read output_hidden_states instead." + hint(" It holds "
                   "the same tensors, but Part 3 asks you to register a forward hook on each decoder layer."))
    else:
        message = "No forward hooks were registered." + hint(f" Part 3 asks for a forward hook on each of the "
                                                              f"{ctx.assignment.n_layers} decoder layers.")
    assert ctx.hooks.total, message
    return ctx.hooks


@pytest.mark.reference_answerable
@pytest.mark.check("p3.hooks_every_layer", "A hook on every decoder layer")
@pytest.mark.points(10)
def test_hooks_every_layer(ctx, note):
    hooks = _student_hooks(ctx)
    NUM_LAYERS = ctx.assignment.n_layers
    if hooks.global_hooks:
        note("A global module hook sees every layer.")
        return
    missing = sorted(set(range(NUM_LAYERS)) - hooks.layers)
    assert not missing, (
        f"Hooks were registered on {len(hooks.layers)} of the {NUM_LAYERS} decoder layers "
        f"({layer_ranges(hooks.layers) or 'none'}); layers {layer_ranges(missing)} have none. Registered: {hooks.describe()}."
    )
    note(f"Registered: {hooks.describe()}.")


@pytest.mark.reference_answerable
@pytest.mark.check("p3.hook_site", "Hooks are placed where the layer's input can be read")
@pytest.mark.points(10)
def test_hook_site(ctx, note):
    hooks = _student_hooks(ctx)
    NUM_LAYERS, family = ctx.assignment.n_layers, ctx.assignment.family
    if hooks.global_hooks and not hooks.by_layer:
        note("Global module hooks can read every layer's input.")
        return
    # judged on the layers that have hooks; layers without any cost p3.hooks_every_layer
    wrong = sorted((hooks.layers or set(range(NUM_LAYERS))) - hooks.reads_target)
    assert not wrong, (
        f"Your hooks are registered as {hooks.describe()}. None of them can read the input of "
        f"layer{'s' if len(wrong) > 1 else ''} {layer_ranges(wrong)}." + hint(" The residual stream entering a decoder "
        f"layer is the first argument of the layer's forward: read it with a forward pre-hook on model.{family.layers}[i] "
        f"(args[0]) or on its {family.module_of('ln1_out')}, or with a forward hook on either that reads its input.")
    )
    note(f"Registered: {hooks.describe()}.")


@pytest.mark.reference_answerable
@pytest.mark.check("p3.captures_match", "Captured tensors equal the residual stream entering each layer")
@pytest.mark.points(15)
def test_captures_match(ctx, note):
    cmp = ctx.comparison.captures
    NUM_LAYERS, N_TOKENS, family = ctx.assignment.n_layers, ctx.assignment.n_tokens, ctx.assignment.family
    assert cmp is not None, (
        "No captured activations were found after the notebook ran: expected a dict indexed by layer number "
        f"(0..{NUM_LAYERS - 1}) holding one tensor of shape [1, {N_TOKENS}, hidden] (or [{N_TOKENS}, hidden]) per layer."
        + (f" {ctx.execution.reason}." if ctx.execution.status != "ok" else "")
    )
    where = f"`{cmp.variable}`"
    if cmp.reference == "none":
        pytest.fail(f"{where} holds {cmp.n_tokens} tokens per layer; {cmp.note}.")
    layers = cmp.layers
    special = {ls.site for ls in layers} & {"generate_step", "shape_mismatch"}
    if "generate_step" in special:
        ls = next(ls for ls in layers if ls.site == "generate_step")
        pytest.fail(f"{where} holds one token per layer (shape {ls.shape}): your hooks overwrote the dict on every "
                    "forward call, so it kept the last step of generate()." + hint(" Run the prompt once with "
                    "model(...) instead, or only save the first call."))
    present = {ls.layer for ls in layers}
    if cmp.n_correct == NUM_LAYERS and present == set(range(NUM_LAYERS)):
        note(f"All {NUM_LAYERS} layers in {where} equal resid_pre"
             + (f" ({cmp.note})" if cmp.note else "") + (f" (keys 1..{NUM_LAYERS} read as layers 0..{NUM_LAYERS - 1})" if cmp.key_base else "")
             + f". Read as {_layout_words(cmp.layout)}.")
        if "names such as" in cmp.layout:
            note("Part 3 asks for a dictionary indexed by the layer number; yours is keyed by module names, read by "
                 "the layer number in each name (no points lost).")
        return
    wrong = [ls for ls in layers if not ls.correct]
    dominant_site, offset = cmp.dominant
    example = next((ls for ls in wrong if ls.layer == 7), wrong[0] if wrong else None)
    if example is not None and example.site not in ("unknown", "shape_mismatch") and example.matched_layer is not None:
        found = describe(example.site, example.matched_layer, family)
        msg = (f"Your layer {example.layer} capture equals {found}, not {describe('resid_pre', example.layer, family)}.")
        same = sum(1 for ls in wrong if ls.site == example.site and
                   (ls.matched_layer or 0) - ls.layer == example.matched_layer - example.layer)
        if same > 1:
            msg += f" The same holds for {same} of your {len(layers)} captured layers."
        if example.site == "resid_post" or example.matched_layer != example.layer:
            msg += (" A layer's output is the next layer's input, so this is off by one layer:"
                    + hint(" hook the input of each layer, not its output."))
    elif example is not None:
        msg = (f"Your layer {example.layer} capture (shape {example.shape}) matches none of the activations of that "
               f"layer" + (f"; the closest is {example.nearest} (median relative difference {example.error:.2g})"
                           if example.error is not None else "") + ".")
    else:
        msg = ""
    missing = sorted(set(range(NUM_LAYERS)) - present)
    if missing:
        msg += f" Layers {layer_ranges(missing)} were not captured ({len(present)} of {NUM_LAYERS} present in {where})."
    pytest.fail(msg.strip())
