"""The prompt: which token ids the model was run on, from the forwards the probe recorded.

The verdict rests on the recorded token ids alone (never on how similar the captures are): when a
forward was recorded and none ran the assignment's ids, the first differing position is named with
both tokens decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grader.execute.records import ExecutionRecord
from grader.judge.golden import Golden


@dataclass
class PromptVerdict:
    ran_golden: bool
    n_forwards: int
    token_counts: list[int]
    from_generate: bool
    first_difference: str | None = None
    ids_recorded: bool = False  # some forward's token ids were recorded (not only inputs_embeds)


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare_prompt(rec: ExecutionRecord, golden: Golden, decode: Callable[[list[int]], list[str]] | None = None
                   ) -> PromptVerdict:
    forwards = rec.forwards or []
    ran = any(f.get("input_ids_sha256") == golden.ids_sha256 for f in forwards)
    counts = sorted({f.get("n_tokens") for f in forwards if f.get("n_tokens") is not None})
    recorded = [f["input_ids"] for f in forwards if f.get("input_ids")]
    verdict = PromptVerdict(ran_golden=ran, n_forwards=rec.n_forwards, token_counts=counts,
                            from_generate=any(f.get("from_generate") for f in forwards),
                            ids_recorded=bool(recorded) or any(f.get("input_ids_sha256") for f in forwards))
    if not ran and recorded:
        ids = max(recorded, key=lambda r: (_common_prefix(r, golden.token_ids), len(r)))  # the closest run
        diff = _common_prefix(ids, golden.token_ids)
        verdict.first_difference = (f"{len(ids)} tokens were run; they first differ from the assignment's "
                                    f"{golden.n_tokens} at position {diff}")
        if decode is not None:
            theirs = repr(decode([ids[diff]])[0]) if diff < len(ids) else "the end of your prompt"
            ours = repr(decode([golden.token_ids[diff]])[0]) if diff < golden.n_tokens else "the end of the prompt"
            verdict.first_difference += f": {theirs} where the assignment has {ours}"
    return verdict
