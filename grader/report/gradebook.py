"""Class-level outputs from every out/<id>/results.json: Canvas grades.csv, grades_detail.csv, index.html.

Rebuilt from the results on disk each time, so shards graded on different machines merge by copying
their folders into one and running `grade --summarize DIR`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from grader.execute.records import write_atomic

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def load_results(out_root: Path) -> list[dict]:
    """[{id, results, submission}] for every complete submission folder, sorted by id."""
    rows = []
    for path in sorted(Path(out_root).glob("*/results.json")):
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        sub_path = path.parent / "submission.json"
        submission = json.loads(sub_path.read_text()) if sub_path.is_file() else {"id": path.parent.name}
        rows.append({"id": path.parent.name, "results": results, "submission": submission})
    return rows


def _checks(results: dict) -> list[dict]:
    return results.get("extra_data", {}).get("checks", [])


def canvas_csv(rows: list[dict], assignment: str) -> str:
    """Canvas gradebook import: one assignment column, the 'Points Possible' row first."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CANVAS_COLUMNS + [assignment])
    possible = max((sum(c["max_points"] for c in _checks(r["results"])) for r in rows), default=100)
    w.writerow(["Points Possible", "", "", "", "", f"{possible:g}"])
    for r in rows:
        sub = r["submission"]
        w.writerow([sub.get("student_name") or sub.get("id"), sub.get("student_id") or sub.get("id"), "", "", "",
                    f"{r['results']['score']:g}"])
    return buf.getvalue()


def detail_csv(rows: list[dict]) -> str:
    check_ids = []
    for r in rows:
        for c in _checks(r["results"]):
            if c["id"] not in check_ids:
                check_ids.append(c["id"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["submission", "student", "student_id", "late", "grading_status", "score", "max_score",
                "auto_max_score", *check_ids, "captures_site", "mistakes", "reason"])
    for r in rows:
        res, sub = r["results"], r["submission"]
        extra = res.get("extra_data", {})
        by_id = {c["id"]: c for c in _checks(res)}
        cells = []
        for cid in check_ids:
            c = by_id.get(cid)
            cells.append("" if c is None else ("manual" if c["manual"] else f"{c['points']:g}"))
        w.writerow([r["id"], sub.get("student_name") or "", sub.get("student_id") or "", sub.get("late", False),
                    extra.get("status", ""), f"{res['score']:g}", f"{sum(c['max_points'] for c in _checks(res)):g}",
                    f"{sum(c['max_points'] for c in _checks(res) if not c['manual']):g}", *cells,
                    extra.get("captures_site") or "", "; ".join(extra.get("mistakes", [])), extra.get("reason", "")])
    return buf.getvalue()


def write_class_outputs(out_root: Path, canvas_assignment: str = "Qwen3 residual stream (autograded)") -> dict:
    out_root = Path(out_root)
    rows = load_results(out_root)
    paths = {"csv": out_root / "grades.csv", "detail": out_root / "grades_detail.csv", "index": out_root / "index.html"}
    write_atomic(paths["csv"], canvas_csv(rows, canvas_assignment))
    write_atomic(paths["detail"], detail_csv(rows))
    from grader.report.html import write_index

    write_index(out_root, rows)
    return paths
