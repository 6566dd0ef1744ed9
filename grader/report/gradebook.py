"""Class-level outputs from every out/<id>/results.json and the TA's manual.json: Canvas grades.csv,
grades_detail.csv, index.html.

Rebuilt from the files on disk each time, so shards graded on different machines merge by copying
their folders into one and running `grade summarize DIR`, and a TA's new manual points reach the
gradebook the same way. Every total comes from grader/report/totals.py.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.io import write_atomic
from grader.judge.rubric.late import LatePolicy, load_late_policy
from grader.report.totals import Total, totals
from grader.results import load_results
from grader.errors import UsageError

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# The grades.csv column when --canvas-assignment is not given (nor recorded in OUT/grading.json): the
# assignment's name, as its value is the assignment's total (automated + the TA's points - late penalty).
def default_column(assignment: str | None = None) -> str:
    """The Canvas column when --canvas-assignment is not given: the pack's [assignment] gradebook_column."""
    from grader.spec.pack import load_pack

    return load_pack(assignment).info.gradebook_column


DEFAULT_ASSIGNMENT = default_column()  # the default pack's column
CANVAS_ID = re.compile(r"\(\s*\d+\s*\)\s*$")  # Canvas's export names a column "Assignment name (12345)"


class ManualPendingError(UsageError, RuntimeError):
    """--require-manual and manual checks are still ungraded: grades.csv was not written."""


def canvas_csv(rows: list[Total], assignment: str) -> str:
    """Canvas gradebook import: one assignment column, the 'Points Possible' row first."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CANVAS_COLUMNS + [assignment])
    possible = max((t.possible for t in rows), default=100)
    w.writerow(["Points Possible", "", "", "", "", f"{possible:g}"])
    for t in rows:
        sub = t.result.submission
        w.writerow([sub.student_name or sub.id, sub.student_id or sub.id, "", "", "", f"{t.score:g}"])
    return buf.getvalue()


def detail_csv(rows: list[Total], similar: dict[str, list[str]] | None = None) -> str:
    check_ids = list(dict.fromkeys(c.id for t in rows for c in t.result.checks))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "student", "student_id", "late", "grading_status", "score", "max_score",
                "automated_score", "auto_max_score", "manual_score", "manual_pending", "manual_note", "late_penalty", *check_ids,
                "captures_site", "mistakes", "similar_to", "reason"])
    for t in rows:
        r = t.result
        marks = {m.check: m for m in t.manual}
        cells = []
        for cid in check_ids:
            c = next((c for c in r.checks if c.id == cid), None)
            if c is None:
                cells.append("")
            elif c.manual:
                m = marks[cid]
                cells.append("pending" if m.points is None else f"{m.points:g}")
            else:
                cells.append(f"{c.points:g}")
        w.writerow([r.id, r.submission.student_name or "", r.submission.student_id or "", r.submission.late,
                    r.summary.status or "", f"{t.score:g}", f"{t.possible:g}", f"{t.automated:g}",
                    f"{r.auto_max_score:g}", f"{t.manual_points:g}", " ".join(t.pending), t.manual_note, f"{t.late_penalty:g}",
                    *cells, r.summary.captures_site or "", "; ".join(r.summary.mistakes),
                    " ".join((similar or {}).get(r.id, [])), r.summary.reason or ""])
    return buf.getvalue()


@dataclass
class ClassOutputs:
    paths: dict[str, Path]
    totals: list[Total]
    warnings: list[str] = field(default_factory=list)  # something is wrong: say it as "warning:"
    notes: list[str] = field(default_factory=list)  # worth knowing, nothing wrong: say it as "note:"

    @property
    def pending(self) -> int:
        return sum(len(t.pending) for t in self.totals)

    def held_text(self) -> str:
        """'; 2 of them wait for a regrade of ...' when pending items belong to a grader_error ('' if none)."""
        held = [t for t in self.totals if t.held]
        return (f"; {sum(len(t.held) for t in held)} of them wait for a regrade of the {len(held)} submission(s) "
                f"the grader failed on (grader_error: {', '.join(t.result.id for t in held[:5])}"
                f"{', ...' if len(held) > 5 else ''})") if held else ""

    def pending_text(self, out_root: Path) -> str:
        who = sum(bool(t.pending) for t in self.totals)
        return (f"{self.pending} manual item(s) of {who} submission(s) are not graded yet (grade review {out_root}, "
                f"or grade manual {out_root} --export/--import); they count 0 in grades.csv{self.held_text()}")


def write_class_outputs(out_root: Path, canvas_assignment: str | None = None, rubric: Path | None = None,
                        require_manual: bool = False) -> ClassOutputs:
    """grades.csv (unless --require-manual and TA items are pending), grades_detail.csv, index.html.
    canvas_assignment None: DEFAULT_ASSIGNMENT."""
    from grader.report.index import write_index

    from grader.settings import recorded_assignment

    out_root = Path(out_root)
    assignment = recorded_assignment(out_root)
    canvas_assignment = canvas_assignment or default_column(assignment)
    late: LatePolicy = load_late_policy(rubric, assignment)
    rows = totals(out_root, load_results(out_root), late)
    similar = similar_submissions(out_root, rows, assignment)
    paths = {"csv": out_root / "grades.csv", "detail": out_root / "grades_detail.csv", "index": out_root / "index.html"}
    out = ClassOutputs(paths, rows)
    if not CANVAS_ID.search(canvas_assignment):  # fine for a new column; one line on how to fill an existing one
        out.notes.append(f"grades.csv's column {canvas_assignment!r} has no Canvas id, so Canvas will create a new "
                         "column on import; to fill an existing assignment pass --canvas-assignment 'Name (id)' as "
                         "Canvas's gradebook export names it")
    write_atomic(paths["detail"], detail_csv(rows, similar))
    write_index(out_root, rows, similar)
    if require_manual and out.pending:
        raise ManualPendingError(f"--require-manual: {out.pending} manual item(s) are pending{out.held_text()}; so "
                                 "grades.csv was not written (grades_detail.csv and index.html were)")
    write_atomic(paths["csv"], canvas_csv(rows, canvas_assignment))
    return out


def similar_submissions(out_root: Path, rows: list[Total], assignment: str | None = None) -> dict[str, list[str]]:
    """{submission id: ids of submissions whose own code or answer is (nearly) the same}."""
    from grader.report.similar import similar_map
    from grader.spec.pack import load_pack

    return similar_map(out_root, [t.result for t in rows], load_pack(assignment))
