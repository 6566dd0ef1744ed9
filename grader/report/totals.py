"""A submission's total as every output states it: automated points + the TA's manual points - late penalty.

Reads each Result (results.json, written by grading) and DIR/manual.json (the TA's points, kept apart
from grading so a regrade never touches them) and the rubric's [late] policy. grades.csv, grades_detail.csv,
the class index and the feedback pages all take their numbers from here, so they agree.

A manual point counts only for the notebook version it was given for: when the student resubmitted
(the notebook's sha256 changed) the entry is "stale" and the check is pending again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from grader.results import Result


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


def load_late_policy(rubric_path: Path | None) -> LatePolicy:
    """The [late] table of a rubric file (default rubric: no penalty); RubricError (a ValueError) says what
    is wrong. `grade` calls it before the first notebook runs (Settings.validate)."""
    from grader.rubric.config import DEFAULT_RUBRIC, RubricError, read_rubric_file

    path = Path(rubric_path) if rubric_path else DEFAULT_RUBRIC
    late = read_rubric_file(path).get("late", {})
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


@dataclass
class ManualMark:
    """One manual check of one submission: the TA's points and comment, or pending."""

    check: str
    title: str
    max_points: float
    points: float | None = None  # None: not graded yet (or stale)
    comment: str = ""
    grader: str = ""
    stale: bool = False  # graded, but for an earlier version of the notebook


@dataclass
class Total:
    result: Result
    manual: list[ManualMark] = field(default_factory=list)
    late_penalty: float = 0.0

    @property
    def automated(self) -> float:
        return round(sum(c.points for c in self.result.checks if not c.manual), 4)

    @property
    def manual_points(self) -> float:
        return round(sum(m.points or 0.0 for m in self.manual), 4)

    @property
    def score(self) -> float:
        return round(self.automated + self.manual_points - self.late_penalty, 4)

    @property
    def possible(self) -> float:
        return self.result.max_score

    @property
    def pending(self) -> list[str]:
        return [m.check for m in self.manual if m.points is None]


def totals(out_root: Path, results: list[Result], late: LatePolicy = LatePolicy()) -> list[Total]:
    """The total of every result, with the TA's points from out_root/manual.json."""
    store = _store(out_root)
    out = []
    for r in results:
        entries = store.entries_for(r.id) if store is not None else {}
        marks = []
        for c in (c for c in r.checks if c.manual):
            e = entries.get(c.id)
            stale = bool(e and e.notebook_sha256 and r.summary.notebook_sha256
                         and e.notebook_sha256 != r.summary.notebook_sha256)
            usable = e is not None and not stale
            marks.append(ManualMark(c.id, c.title, c.max_points, e.points if usable else None,
                                    e.comment if e else "", e.grader if e else "", stale))
        total = Total(r, marks)
        total.late_penalty = late.penalty(total.automated + total.manual_points, bool(r.submission.late))
        out.append(total)
    return out


def _store(out_root: Path):
    """The manual store of out_root, or None when the TA tools are not installed (the student kit)."""
    try:
        from grader.manual.store import ManualStore
    except ImportError:
        return None
    return ManualStore(out_root)
