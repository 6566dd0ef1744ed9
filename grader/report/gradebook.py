"""Class-level outputs from every out/<id>/results.json: Canvas grades.csv, grades_detail.csv, index.html.

Rebuilt from the results on disk each time, so shards graded on different machines merge by copying
their folders into one and running `grade summarize DIR`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.io import write_atomic
from grader.results import Result, load_results

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def canvas_csv(rows: list[Result], assignment: str) -> str:
    """Canvas gradebook import: one assignment column, the 'Points Possible' row first."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CANVAS_COLUMNS + [assignment])
    possible = max((r.max_score for r in rows), default=100)
    w.writerow(["Points Possible", "", "", "", "", f"{possible:g}"])
    for r in rows:
        w.writerow([r.submission.student_name or r.submission.id, r.submission.student_id or r.submission.id,
                    "", "", "", f"{r.score:g}"])
    return buf.getvalue()


def detail_csv(rows: list[Result]) -> str:
    check_ids = list(dict.fromkeys(c.id for r in rows for c in r.checks))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "student", "student_id", "late", "grading_status", "score", "max_score",
                "auto_max_score", *check_ids, "captures_site", "mistakes", "reason"])
    for r in rows:
        by_id = {c.id: c for c in r.checks}
        cells = ["" if cid not in by_id else ("manual" if by_id[cid].manual else f"{by_id[cid].points:g}")
                 for cid in check_ids]
        w.writerow([r.id, r.submission.student_name or "", r.submission.student_id or "", r.submission.late,
                    r.summary.status or "", f"{r.score:g}", f"{r.max_score:g}", f"{r.auto_max_score:g}", *cells,
                    r.summary.captures_site or "", "; ".join(r.summary.mistakes), r.summary.reason or ""])
    return buf.getvalue()


def write_class_outputs(out_root: Path, canvas_assignment: str = "Qwen3 residual stream (autograded)") -> dict:
    from grader.report.index import write_index

    out_root = Path(out_root)
    rows = load_results(out_root)
    paths = {"csv": out_root / "grades.csv", "detail": out_root / "grades_detail.csv", "index": out_root / "index.html"}
    write_atomic(paths["csv"], canvas_csv(rows, canvas_assignment))
    write_atomic(paths["detail"], detail_csv(rows))
    write_index(out_root, rows)
    return paths
