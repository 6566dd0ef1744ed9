"""Part 4: run the assignment's prompt (404 tokens under Qwen3's tokenizer) through the model.

Judged on the token ids the probe recorded: captures that look like the reference's never stand in
for ids that were recorded (one changed word barely moves the other tokens' residuals).
"""

import pytest

from grader.judge.rubric.plugin import hint


@pytest.mark.reference_answerable
@pytest.mark.check("p4.prompt_exact", "The assignment's prompt was run")
@pytest.mark.points(10)
def test_prompt_exact(ctx, note):
    prompt = ctx.comparison.prompt
    NUM_TOKENS = ctx.assignment.n_tokens
    if prompt.ran_golden:
        note(f"The model ran on exactly the {NUM_TOKENS} prompt tokens"
             + (" (first as the prompt of generate())." if prompt.from_generate else "."))
        return
    caps = ctx.comparison.captures
    if not prompt.ids_recorded and caps is not None and caps.reference == "prompt" and caps.n_correct:
        what = "The forward call was not recorded" if not prompt.n_forwards else "Your token ids were not recorded"
        note(f"{what}, but your captures equal the reference run on the {NUM_TOKENS} prompt tokens.")
        return
    assert prompt.n_forwards, (
        "The model was never called on a prompt (no forward pass was recorded)." + hint(" Part 4 asks you to pass "
        "the prompt through the model: inputs = tokenizer(prompt, return_tensors=\"pt\"); model(**inputs).")
    )
    counts = ", ".join(str(c) for c in prompt.token_counts) or "unknown"
    detail = f" {prompt.first_difference}." if prompt.first_difference else ""
    pytest.fail(
        f"The model ran on {counts} tokens, but not on the assignment's {NUM_TOKENS} prompt tokens.{detail}"
        + hint(" Use the prompt string exactly as given, tokenized with tokenizer(prompt, return_tensors=\"pt\") and "
               "no chat template.")
    )
