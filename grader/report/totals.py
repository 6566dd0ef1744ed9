"""A submission's total as every output states it: automated points + the TA's manual points - late penalty.

Reads each Result (results.json, written by grading) and DIR/manual.json (the TA's points, kept apart
from grading so a regrade never touches them) and the rubric's [late] policy (grader/judge/rubric/late.py). grades.csv, grades_detail.csv,
the class index and the feedback pages all take their numbers from here, so they agree.

A manual point counts only for the notebook version it was given for: when the student resubmitted
(the notebook's sha256 changed) the entry is "stale" and the check is pending again.

Before a TA grades it, a manual check is worth what `manual_rule` says for how the run ended: 0, with
the reason, when nothing gradable was submitted (`no_notebook`, `invalid_notebook`), so no TA types
zeros for them; pending until the regrade (and saying so) after a `grader_error`; pending otherwise.
A TA's recorded points always win over the rule (manual.json is never written here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.judge.rubric.late import LatePolicy
from grader.results import CheckResult, Result
from grader.report.manual_points import ManualPoints
from grader.status import Status


@dataclass(frozen=True)
class ManualRule:
    """What a manual check is worth while no TA has graded it, by how the submission's run ended."""

    points: float | None = None  # None: pending, a TA grades it
    note: str = ""  # why, as the TA and the student read it ("" for the ordinary case)


# Nothing gradable was submitted: the manual checks are 0 without a TA (who can still override them).
NOTHING_GRADABLE = {Status.NO_NOTEBOOK: "no notebook was submitted",
                    Status.INVALID_NOTEBOOK: "the submitted file is not a readable notebook"}
HELD_NOTE = "pending until this submission is regraded: the grader failed on it (grader_error), not the student"


def manual_rule(status: Status | str | None) -> ManualRule:
    """The rule for the manual checks of a submission whose run ended with `status`."""
    status = Status.parse(status)
    if status in NOTHING_GRADABLE:
        return ManualRule(0.0, f"0 without a TA's grading: {NOTHING_GRADABLE[status]} ({status})")
    if status == Status.GRADER_ERROR:
        return ManualRule(None, HELD_NOTE)
    return ManualRule()


@dataclass
class ManualMark:
    """One manual check of one submission: the TA's points and comment, the rule's 0, or pending."""

    check: str
    title: str
    max_points: float
    points: float | None = None  # None: not graded yet (or stale)
    comment: str = ""
    grader: str = ""
    stale: bool = False  # graded, but for an earlier version of the notebook
    automatic: bool = False  # `points` come from manual_rule (nothing gradable was submitted), not from a TA
    note: str = ""  # the rule's reason, where no TA's points count: "0 without a TA's grading: ...", "pending until ..."

    @property
    def held(self) -> bool:
        """Pending, and not for a TA yet: the submission must be regraded first."""
        return self.points is None and bool(self.note)


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

    @property
    def automatic(self) -> list[str]:
        """The manual checks worth the rule's 0 (nothing gradable was submitted), not a TA's points."""
        return [m.check for m in self.manual if m.automatic]

    @property
    def held(self) -> list[str]:
        """The pending checks that wait for a regrade (grader_error), not for a TA."""
        return [m.check for m in self.manual if m.held]

    @property
    def manual_note(self) -> str:
        """One line on the checks the rule decided: "p2.diagram, p5.explanation: 0 without ..." ("" if none)."""
        by_note: dict[str, list[str]] = {}
        for m in self.manual:
            if m.automatic or m.held:
                by_note.setdefault(m.note, []).append(m.check)
        return "; ".join(f"{', '.join(checks)}: {note}" for note, checks in by_note.items())


def totals(out_root: Path, results: list[Result], late: LatePolicy = LatePolicy()) -> list[Total]:
    """The total of every result, with the TA's points from out_root/manual.json."""
    snapshot = ManualPoints(out_root).snapshot()
    out = []
    for r in results:
        entries = snapshot.get(r.id, {})
        total = Total(r, [manual_mark(c, entries.get(c.id), r) for c in r.checks if c.manual])
        total.late_penalty = late.penalty(total.automated + total.manual_points, bool(r.submission.late))
        out.append(total)
    return out


def manual_mark(check: CheckResult, entry, result: Result) -> ManualMark:
    """One manual check's mark: the TA's entry (grader.report.manual_points.Entry, or None) where it counts (not
    stale), else what manual_rule says for the result's status."""
    stale = bool(entry and entry.notebook_sha256 and result.summary.notebook_sha256
                 and entry.notebook_sha256 != result.summary.notebook_sha256)
    comment, grader = (entry.comment, entry.grader) if entry else ("", "")
    if entry is not None and not stale:
        return ManualMark(check.id, check.title, check.max_points, entry.points, comment, grader)
    rule = manual_rule(result.summary.status)
    return ManualMark(check.id, check.title, check.max_points, rule.points, comment, grader, stale,
                      automatic=rule.points is not None, note=rule.note)


