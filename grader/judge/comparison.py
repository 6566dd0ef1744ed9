"""Judge extracted captures and projections against the golden, in the grader process.

    extracted.npz + execution.json -> Comparison(captures, projections, prompt) -> comparison.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from grader.execute.records import ExecutionRecord
from grader.judge.captures import CaptureVerdict, arrays_of, compare_captures
from grader.judge.golden import GoldenStore
from grader.judge.projections import ProjectionVerdict, compare_projections
from grader.judge.prompt import PromptVerdict, compare_prompt


@dataclass
class Comparison:
    captures: CaptureVerdict | None
    projections: ProjectionVerdict | None
    prompt: PromptVerdict
    golden_ids_sha256: str

    def to_json(self) -> dict:
        return asdict(self)


def compare(rec: ExecutionRecord, extracted: dict[str, np.ndarray], store: GoldenStore) -> Comparison:
    golden = store.get()
    captures = compare_captures(rec, extracted, store, golden)
    cap_arrays = arrays_of(extracted, "captures", captures.variable) if captures else None
    projections = compare_projections(rec, extracted, captures, cap_arrays, golden)
    return Comparison(captures=captures, projections=projections, prompt=compare_prompt(rec, golden, store.decode),
                      golden_ids_sha256=golden.ids_sha256)

