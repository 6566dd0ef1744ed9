"""The TA loop end to end, with the real `grade` on real notebooks: manual points exported, filled,
imported and merged into every total; refused imports change nothing; a regrade keeps the TA's points
(a changed resubmission makes them stale); late penalties; a copied notebook and its source flag each
other; usage errors; outputs readable by the group.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build

from tests.test_similarity import _rewrite, _user_names

JANE, KIM, AL = "doejane_12345", "roekim_222", "smithal_444"
RUBRIC = '[late]\npenalty = 0.1\n'


def _grade(*args: str, cwd: Path | None = None, umask: int | None = 0o002) -> subprocess.CompletedProcess:
    """`grade ...` as a TA on a shared server runs it: umask 002, so the group can read and write the outputs."""
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=cwd, preexec_fn=pre)


def renamed_copy(nb):
    """Another student's copy: every variable renamed, every comment reworded (it still runs)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    mapping = {n: f"my_{n}_v2" for n in sorted(_user_names([c.source for c in code]))}
    for cell in code:
        cell.source = _rewrite(cell.source, mapping)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ta-loop")
    src, out = root / "canvas", root / "grading"
    src.mkdir()
    nbformat.write(build("correct_named_modules"), str(src / f"doejane_12345_67890_hw.ipynb"))
    nbformat.write(renamed_copy(build("correct_named_modules")), str(src / "roekim_LATE_222_333_hw.ipynb"))
    nbformat.write(build("wrong_site_mlp"), str(src / "smithal_444_555_hw.ipynb"))
    (root / "rubric.toml").write_text(RUBRIC)
    proc = _grade(str(src), "--out", str(out), "--workers", "2", "--no-report", "--rubric", str(root / "rubric.toml"),
                  umask=0o002)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {"root": root, "src": src, "out": out, "rubric": root / "rubric.toml", "stdout": proc.stdout}


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _canvas(out: Path) -> dict[str, str]:
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert rows[1][0] == "Points Possible"
    return {"possible": rows[1][5], **{r[1]: r[5] for r in rows[2:]}}


def test_export_fill_import_summarize_totals(graded, tmp_path):
    out = graded["out"]
    export = tmp_path / "manual.csv"
    proc = _grade("manual", str(out), "--export", str(export))
    assert proc.returncode == 0, proc.stderr
    rows = _csv(export)
    assert list(rows[0]) == ["id", "student", "check", "max_points", "points", "comment"]
    assert {(r["id"], r["check"]) for r in rows} == {(s, c) for s in (JANE, KIM, AL) for c in ("p2.diagram", "p5.explanation")}
    assert all(r["points"] == "" for r in rows)
    points = {(JANE, "p2.diagram"): "8", (JANE, "p5.explanation"): "5", (KIM, "p2.diagram"): "10",
              (KIM, "p5.explanation"): "4.5", (AL, "p2.diagram"): "6", (AL, "p5.explanation"): "3"}
    for r in rows:
        r["points"], r["comment"] = points[(r["id"], r["check"])], f"comment for {r['id']}"
    with export.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    proc = _grade("manual", str(out), "--import", str(export), "--grader", "ta-ana")
    assert proc.returncode == 0, proc.stderr
    proc = _grade("summarize", str(out), "--rubric", str(graded["rubric"]), "--require-manual")
    assert proc.returncode == 0, proc.stderr
    canvas = _canvas(out)
    results = {sid: json.loads((out / sid / "results.json").read_text()) for sid in (JANE, KIM, AL)}
    assert canvas["possible"] == "100"
    assert float(canvas["12345"]) == results[JANE]["score"] + 8 + 5
    late_total = results[KIM]["score"] + 10 + 4.5
    assert float(canvas["222"]) == pytest.approx(late_total - 0.1 * late_total)  # Canvas marked it LATE
    assert float(canvas["444"]) == results[AL]["score"] + 6 + 3 == 60 + 9
    detail = {r["submission"]: r for r in _csv(out / "grades_detail.csv")}
    assert detail[KIM]["manual_pending"] == "" and detail[KIM]["p5.explanation"] == "4.5"
    assert float(detail[KIM]["late_penalty"]) == pytest.approx(0.1 * late_total)
    assert "pending" not in (out / "index.html").read_text().split('id="subs"')[1]


def test_refused_import_changes_nothing(graded, tmp_path):
    out = graded["out"]
    store = out / "manual.json"
    before = store.read_bytes() if store.exists() else None
    bad = tmp_path / "bad.csv"
    bad.write_text("id,student,check,max_points,points,comment\n"
                   f"{JANE},doejane,p2.diagram,10,11,too many\n"
                   f"nobody_1,x,p2.diagram,10,5,\n"
                   f"{AL},smithal,p3.hook_site,10,5,\n"
                   f"{KIM},roekim,p5.explanation,5,five,\n")
    proc = _grade("manual", str(out), "--import", str(bad))
    assert proc.returncode == 2
    for line, phrase in ((2, "11"), (3, "nobody_1"), (4, "p3.hook_site"), (5, "five")):
        assert f"line {line}" in proc.stderr and phrase in proc.stderr, proc.stderr
    assert (store.read_bytes() if store.exists() else None) == before


def test_regrade_keeps_the_manual_points_and_a_changed_resubmission_makes_them_stale(graded):
    out, src = graded["out"], graded["src"]
    store_before = (out / "manual.json").read_bytes()
    nb = build("wrong_site_mlp")
    nb.cells.append(nbformat.v4.new_markdown_cell("Edited after the deadline: the tokens cluster in late layers."))
    nbformat.write(nb, str(src / "smithal_444_555_hw.ipynb"))  # a resubmission with other bytes
    others = {sid: (out / sid / "results.json").read_bytes() for sid in (JANE, KIM)}
    # only the resubmission is executed again (`--only`; the rubric is the one recorded in grading.json)
    proc = _grade(str(src), "--out", str(out), "--workers", "2", "--no-report", "--only", AL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert {sid: (out / sid / "results.json").read_bytes() for sid in (JANE, KIM)} == others
    assert (out / "manual.json").read_bytes() == store_before  # regrading never touches the TA's points
    proc = _grade("summarize", str(out), "--rubric", str(graded["rubric"]), "--require-manual")
    assert proc.returncode == 1 and "pending" in proc.stderr  # the resubmission's points are stale
    detail = {r["submission"]: r for r in _csv(out / "grades_detail.csv")}
    assert detail[AL]["manual_pending"] == "p2.diagram p5.explanation" and detail[AL]["p2.diagram"] == "pending"
    assert detail[JANE]["manual_pending"] == "" and detail[JANE]["p2.diagram"] == "8"


def test_a_copy_and_its_source_flag_each_other(graded):
    detail = {r["submission"]: r for r in _csv(graded["out"] / "grades_detail.csv")}
    assert detail[JANE]["similar_to"] == KIM and detail[KIM]["similar_to"] == JANE
    assert detail[AL]["similar_to"] == ""
    index = (graded["out"] / "index.html").read_text()
    assert f"{JANE} ↔ {KIM}" in index
    page = (graded["out"] / "similar" / f"{JANE}__{KIM}.html").read_text()
    assert "Matched code cells" in page and "my_captured_v2" in page


def test_gradescope_never_shows_a_manual_check_failed(graded):
    res = json.loads((graded["out"] / JANE / "results.json").read_text())
    manual = [t for t in res["tests"] if "manual" in t["tags"]]
    assert len(manual) == 2 and all("status" not in t and t["max_score"] == 0 for t in manual)
    assert res["score"] == sum(t["score"] for t in res["tests"]) == 85
    assert sum(t["max_score"] for t in res["tests"]) == 85


def test_outputs_honour_the_umask(graded):
    for path in (graded["out"] / JANE / "results.json", graded["out"] / "index.html", graded["out"] / JANE / "execution.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path  # group-writable under umask 002, not 0600


def test_a_missing_path_is_a_usage_error_and_writes_nothing(tmp_path):
    proc = _grade(str(tmp_path / "does_not_exist"), "--out", str(tmp_path / "grading"))
    assert proc.returncode == 2 and "does_not_exist: no such file or folder" in proc.stderr
    assert not (tmp_path / "grading").exists()


def test_progress_bar_and_lines(graded):
    assert "[3/3]" in graded["stdout"]


def test_canvas_column_without_an_id_is_warned_about(graded):
    proc = _grade("summarize", str(graded["out"]), "--canvas-assignment", "Residual stream")
    assert "Canvas will create a new column" in proc.stderr
    proc = _grade("summarize", str(graded["out"]), "--canvas-assignment", "Residual stream (98765)")
    assert "Canvas will create a new column" not in proc.stderr
