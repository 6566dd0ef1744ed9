"""The prompt: which token ids the model was run on, from the forwards the probe recorded."""

from __future__ import annotations

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



def compare_prompt(rec: ExecutionRecord, golden: Golden) -> PromptVerdict:
    forwards = rec.forwards or []
    ran = any(f.get("input_ids_sha256") == golden.ids_sha256 for f in forwards)
    counts = sorted({f.get("n_tokens") for f in forwards if f.get("n_tokens") is not None})
    verdict = PromptVerdict(ran_golden=ran, n_forwards=rec.n_forwards, token_counts=counts,
                            from_generate=any(f.get("from_generate") for f in forwards))
    if not ran:
        for f in forwards:
            ids = f.get("input_ids")
            if ids:
                diff = next((i for i, (a, b) in enumerate(zip(ids, golden.token_ids)) if a != b),
                            min(len(ids), len(golden.token_ids)))
                verdict.first_difference = (f"{len(ids)} tokens were run; they first differ from the assignment's "
                                            f"{golden.n_tokens} at position {diff}")
                break
    return verdict


