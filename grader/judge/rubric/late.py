"""The rubric's [late] table: `penalty = 0.1` (a fraction of the points earned) or `points = 10` (subtracted).

Read from the --rubric file when it has one, else from the assignment pack (grader/judge/rubric/config.py
`pack_rubric_tables`); checked before the first notebook runs (Settings.validate). The totals
(grader/report/totals.py) apply it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LatePolicy:
    """rubric.toml [late]: `penalty = 0.1` (a fraction of the points earned) or `points = 10` (subtracted)."""

    fraction: float = 0.0
    points: float = 0.0

    def penalty(self, earned: float, late: bool) -> float:
        if not late:
            return 0.0
        return round(min(earned, earned * self.fraction + self.points), 4)

    @property
    def active(self) -> bool:
        return bool(self.fraction or self.points)

    def describe(self) -> str:
        parts = ([f"{self.fraction:.0%} of the points"] if self.fraction else []) + \
                ([f"{self.points:g} points"] if self.points else [])
        return " + ".join(parts) or "no penalty"


def load_late_policy(rubric_path: Path | None, assignment=None) -> LatePolicy:
    """The [late] table of the rubric file when it has one, else the assignment pack's; RubricError (a
    ValueError) says what is wrong. `grade` calls it before the first notebook runs (Settings.validate)."""
    from grader.judge.rubric.config import RubricError, pack_rubric_tables, read_rubric_file

    data = read_rubric_file(Path(rubric_path)) if rubric_path else {}
    if "late" in data:
        path = rubric_path
    else:
        path, data = pack_rubric_tables(assignment)
    late = data.get("late", {})
    if not isinstance(late, dict) or set(late) - {"penalty", "points"}:
        raise RubricError(f"{path}: [late] may set only 'penalty' (a fraction, 0..1) and 'points', found {late!r}")
    fraction, points = late.get("penalty", 0.0), late.get("points", 0.0)
    if not _number(fraction) or not 0 <= fraction <= 1:
        hint = f"; to subtract {fraction:g} points write `points = {fraction:g}`" if _number(fraction) and fraction > 1 else ""
        raise RubricError(f"{path}: [late] penalty is a fraction of the points earned, between 0 and 1 (0.1: 10%), "
                          f"found {fraction!r}{hint}")
    if not _number(points) or points < 0:
        raise RubricError(f"{path}: [late] points must be a number >= 0, found {points!r}")
    return LatePolicy(float(fraction), float(points))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
