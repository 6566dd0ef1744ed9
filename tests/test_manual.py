"""grader/manual: the TA's grade store (DIR/manual.json) and the CSV round trip, on a small fake
graded folder (grader.manual.sample) so no grading run is needed."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from grader.io import sha256
from grader.manual import outdir
from grader.manual import store as store_mod
from grader.manual.csvio import COLUMNS, CsvImportError, export_csv, import_csv
from grader.manual.sample import make_sample_out_dir, write_result
from grader.manual.store import ManualGradeError, ManualStore, ManualStoreError
from grader.results import Result

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def out_dir(tmp_path) -> Path:
    return make_sample_out_dir(tmp_path / "grading")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, rows: list[list[str]], header=COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


# ---- the store ---------------------------------------------------------------------------------

def test_store_round_trip(out_dir):
    store = ManualStore(out_dir)
    assert store.get("ada_1", "p2.diagram") is None and store.all() == []
    e = store.set("ada_1", "p2.diagram", 7.5, "Clear diagram; the second skip add is missing.", "ana")
    store.set("ada_1", "p5.explanation", "4", "Good.", "ben")
    store.set("grace_2", "p2.diagram", 10, "", "ana")

    again = ManualStore(out_dir)  # a fresh reader sees it
    got = again.get("ada_1", "p2.diagram")
    assert got == e
    assert (got.points, got.comment, got.grader) == (7.5, "Clear diagram; the second skip add is missing.", "ana")
    assert got.time.endswith("+00:00") and "T" in got.time
    assert got.notebook_sha256 == Result.read(out_dir / "ada_1").summary.notebook_sha256
    assert again.get("grace_2", "p2.diagram").notebook_sha256 == sha256(
        out_dir / "grace_2" / "submitted" / "notebook.ipynb")  # the notebook as the student submitted it
    assert set(again.entries_for("ada_1")) == {"p2.diagram", "p5.explanation"}
    assert again.entries_for("ada_1")["p5.explanation"].points == 4.0
    assert [(x.sid, x.check) for x in again.all()] == [("ada_1", "p2.diagram"), ("ada_1", "p5.explanation"),
                                                       ("grace_2", "p2.diagram")]
    assert again.pending("ada_1", ["p2.diagram", "p5.explanation"]) == []
    assert again.pending("grace_2", ["p2.diagram", "p5.explanation"]) == ["p5.explanation"]
    # the file is where the brief says, beside the submission folders, and is plain JSON
    data = json.loads((out_dir / "manual.json").read_text())
    assert data["submissions"]["ada_1"]["p2.diagram"]["points"] == 7.5
    assert not any((out_dir / sid / "manual.json").exists() for sid in outdir.submission_ids(out_dir))


def test_store_refuses_bad_grades_and_writes_nothing(out_dir):
    store = ManualStore(out_dir)
    store.set("ada_1", "p2.diagram", 3, "", "ana")
    before = (out_dir / "manual.json").read_bytes()
    for sid, check, points, words in [
        ("ada_1", "p2.diagram", 10.5, "between 0 and 10"),
        ("ada_1", "p5.explanation", -1, "between 0 and 5"),
        ("ada_1", "p2.diagram", "ten", "must be a number"),
        ("ada_1", "p2.diagram", float("nan"), "finite"),
        ("ada_1", "p1.model_loaded", 1, "automated check"),
        ("ada_1", "p9.nope", 1, "not a check"),
        ("nobody_9", "p2.diagram", 1, "unknown submission"),
        ("../ada_1", "p2.diagram", 1, "unknown submission"),
    ]:
        with pytest.raises(ManualGradeError, match=words):
            store.set(sid, check, points, "x", "ana")
    with pytest.raises(ManualGradeError):  # one bad item: none of them is written
        store.set_many([("grace_2", "p2.diagram", 5, ""), ("grace_2", "p5.explanation", 6, "")], "ana")
    assert (out_dir / "manual.json").read_bytes() == before


def test_unchanged_grade_keeps_its_grader_and_time(out_dir):
    store = ManualStore(out_dir)
    first = store.set("ada_1", "p2.diagram", 6, "ok", "ana")
    before = (out_dir / "manual.json").read_bytes()
    assert store.set("ada_1", "p2.diagram", 6.0, "ok", "ben") == first
    assert (out_dir / "manual.json").read_bytes() == before
    assert store.set("ada_1", "p2.diagram", 7, "ok", "ben").grader == "ben"


def test_corrupt_store_is_never_overwritten(out_dir):
    (out_dir / "manual.json").write_text("{not json")
    store = ManualStore(out_dir)
    with pytest.raises(ManualStoreError, match="not valid JSON"):
        store.set("ada_1", "p2.diagram", 1, "", "ana")
    assert (out_dir / "manual.json").read_text() == "{not json"


def test_stale_after_resubmission(out_dir):
    store = ManualStore(out_dir)
    store.set("ada_1", "p2.diagram", 8, "", "ana")
    store.set("grace_2", "p2.diagram", 9, "", "ana")
    store.set("ivan_3", "p2.diagram", 0, "no diagram", "ana")  # no notebook hash known: never stale
    sha = Result.read(out_dir / "ada_1").summary.notebook_sha256
    assert not store.is_stale("ada_1", "p2.diagram") and not store.is_stale("ada_1", "p2.diagram", sha)
    assert store.is_stale("ada_1", "p2.diagram", "0" * 64)
    assert not store.is_stale("ada_1", "p5.explanation", "0" * 64)  # not graded: nothing to be stale
    assert store.get("ivan_3", "p2.diagram").notebook_sha256 is None
    assert not store.is_stale("ivan_3", "p2.diagram", "0" * 64)

    # a regrade of a changed resubmission rewrites DIR/<id>/ (results.json gets the new hash) ...
    res = Result.read(out_dir / "ada_1")
    shutil.rmtree(out_dir / "ada_1")
    (out_dir / "ada_1").mkdir()
    write_result(out_dir / "ada_1", res, notebook_sha256="f" * 64)
    (out_dir / "ada_1" / "submission.json").write_text("{}")
    # ... and the grade survives, marked stale, and the check is pending again
    assert store.get("ada_1", "p2.diagram").points == 8
    assert store.is_stale("ada_1", "p2.diagram")
    assert store.pending("ada_1", ["p2.diagram", "p5.explanation"]) == ["p2.diagram", "p5.explanation"]
    store.set("ada_1", "p2.diagram", 8, "", "ben")  # the TA confirms it for the new notebook
    assert not store.is_stale("ada_1", "p2.diagram") and store.get("ada_1", "p2.diagram").grader == "ben"

    # only the hash the grader recorded counts: a notebook file changed on disk is not a regrade ...
    nb = out_dir / "grace_2" / "submitted" / "notebook.ipynb"
    nb.write_text(nb.read_text() + "\n")
    assert not store.is_stale("grace_2", "p2.diagram")
    # ... until the regrade records its hash
    write_result(out_dir / "grace_2", Result.read(out_dir / "grace_2"), notebook_sha256=sha256(nb))
    assert store.is_stale("grace_2", "p2.diagram")


WRITER = """
import sys
from grader.manual.store import ManualStore
out, check, start, sids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
import os, time
while not os.path.exists(start):
    time.sleep(0.001)
store = ManualStore(out)
for i, sid in enumerate(sids):
    store.set(sid, check, i % 5, f"{check} by {os.getpid()}", "proc")
"""


def test_two_processes_saving_at_once_lose_nothing(tmp_path):
    out_dir = make_sample_out_dir(tmp_path / "grading", extra_students=40)
    sids = outdir.submission_ids(out_dir)
    start = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(out_dir), check, str(start), *sids], cwd=ROOT)
             for check in ("p2.diagram", "p5.explanation")]
    start.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = ManualStore(out_dir)
    for i, sid in enumerate(sids):
        for check in ("p2.diagram", "p5.explanation"):
            e = store.get(sid, check)
            assert e is not None, f"{sid} {check} was lost"
            assert e.points == i % 5
    assert len(store.all()) == 2 * len(sids)
    assert not list(out_dir.glob(".manual.json.*"))  # no temporary file of grader.io.write_atomic left behind


@pytest.mark.parametrize("without_fcntl", [False, True], ids=["flock", "lockfile"])
def test_two_threads_saving_at_once_lose_nothing(tmp_path, monkeypatch, without_fcntl):
    if without_fcntl:  # the Windows fallback: a lock file created exclusively
        monkeypatch.setattr(store_mod, "fcntl", None)
    out_dir = make_sample_out_dir(tmp_path / "grading", extra_students=25)
    sids = outdir.submission_ids(out_dir)
    barrier = threading.Barrier(2)
    errors = []

    def work(check):
        try:
            store = ManualStore(out_dir)
            barrier.wait()
            for sid in sids:
                store.set(sid, check, 1, check, "thread")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in ("p2.diagram", "p5.explanation")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(ManualStore(out_dir).all()) == 2 * len(sids)
    if without_fcntl:
        assert not (out_dir / ".manual.lock").exists()


# ---- CSV -----------------------------------------------------------------------------------------

def test_export_fill_import(out_dir, tmp_path):
    ManualStore(out_dir).set("ivan_3", "p5.explanation", 0, "No answer found.", "ana")
    sheet = tmp_path / "sheet.csv"
    summary = export_csv(out_dir, sheet)
    assert (summary.rows, summary.blank, summary.submissions, summary.left_out, summary.held) == (6, 5, 3, 0, 0)
    assert sheet.read_text().splitlines()[0] == "id,student,check,max_points,points,comment"
    rows = _read_csv(sheet)
    assert [(r["id"], r["check"]) for r in rows] == [(s, c) for s in ("ada_1", "grace_2", "ivan_3")
                                                     for c in ("p2.diagram", "p5.explanation")]
    assert rows[0]["student"] == "Ada Lovelace" and rows[0]["max_points"] == "10" and rows[1]["max_points"] == "5"
    assert [r["points"] for r in rows] == ["", "", "", "", "", "0"] and rows[5]["comment"] == "No answer found."

    filled = {("ada_1", "p2.diagram"): ("9", "Nice, \"quoted\", and\na second line"),
              ("ada_1", "p5.explanation"): ("4.5", ""),
              ("grace_2", "p2.diagram"): ("10", "ok")}
    for r in rows:
        if (r["id"], r["check"]) in filled:
            r["points"], r["comment"] = filled[(r["id"], r["check"])]
    _write_csv(sheet, [[r[c] for c in COLUMNS] for r in rows])

    counts = import_csv(out_dir, sheet, "carla")
    assert (counts.rows, counts.saved, counts.changed, counts.new, counts.submissions, counts.unchanged,
            counts.skipped) == (6, 3, 0, 3, 2, 1, 2)
    store = ManualStore(out_dir)
    for (sid, check), (points, comment) in filled.items():
        e = store.get(sid, check)
        assert (e.points, e.comment, e.grader) == (float(points), comment, "carla")
    assert store.get("ivan_3", "p5.explanation").grader == "ana"  # unchanged row: kept as it was
    assert store.get("grace_2", "p5.explanation") is None  # blank points: skipped

    # exporting again shows the grades; importing the same sheet twice changes nothing
    again = tmp_path / "again.csv"
    export_csv(out_dir, again)
    shown = {(r["id"], r["check"]): (r["points"], r["comment"]) for r in _read_csv(again)}
    assert shown[("ada_1", "p5.explanation")] == ("4.5", "") and shown[("grace_2", "p2.diagram")] == ("10", "ok")
    assert shown[("ada_1", "p2.diagram")][1] == "Nice, \"quoted\", and\na second line"
    before = (out_dir / "manual.json").read_bytes()
    assert import_csv(out_dir, sheet, "dan").saved == 0
    assert (out_dir / "manual.json").read_bytes() == before
    # a sheet that changes one grade and adds one: counted apart
    rows = [[r[c] for c in COLUMNS] for r in _read_csv(again)]
    rows[1][4], rows[3][4] = "3", "2"  # ada_1 p5.explanation 4.5 -> 3; grace_2 p5.explanation: new
    _write_csv(sheet, rows)
    counts = import_csv(out_dir, sheet, "dan")
    assert (counts.saved, counts.changed, counts.new, counts.submissions) == (2, 1, 1, 2)


@pytest.mark.parametrize("existing", [True, False], ids=["store-exists", "no-store-yet"])
def test_refused_import_lists_every_bad_row_and_writes_nothing(out_dir, tmp_path, existing):
    if existing:
        ManualStore(out_dir).set("ada_1", "p2.diagram", 5, "keep me", "ana")
        before = (out_dir / "manual.json").read_bytes()
    sheet = tmp_path / "bad.csv"
    _write_csv(sheet, [
        ["ada_1", "Ada", "p2.diagram", "10", "8", "fine"],  # line 2: valid
        ["zed_9", "Zed", "p2.diagram", "10", "3", ""],  # line 3: unknown id
        ["ada_1", "Ada", "p1.model_loaded", "5", "5", ""],  # line 4: automated check
        ["ada_1", "Ada", "p7.essay", "5", "5", ""],  # line 5: unknown check
        ["grace_2", "Grace", "p2.diagram", "10", "ten", ""],  # line 6: not a number
        ["grace_2", "Grace", "p5.explanation", "5", "6", ""],  # line 7: above max
        ["ivan_3", "Ivan", "p2.diagram", "10", "-1", ""],  # line 8: below 0
        ["ada_1", "Ada", "p2.diagram", "10", "9", "again"],  # line 9: duplicate of line 2
        ["ivan_3", "Ivan", "p5.explanation"],  # line 10: missing fields
        ["ivan_3", "Ivan", "p5.explanation", "5", "", "blank points are fine"],  # line 11: skipped
    ])
    with pytest.raises(CsvImportError) as info:
        import_csv(out_dir, sheet, "carla")
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert [p.line for p in err.problems] == [3, 4, 5, 6, 7, 8, 9, 10]
    for needle in ["line 3: zed_9,Zed,p2.diagram,10,3,", "id 'zed_9'",
                   "line 4: ada_1,Ada,p1.model_loaded", "an automated check 'p1.model_loaded'",
                   "line 5:", "an unknown check 'p7.essay'",
                   "line 6:", "expected points: a number from 0 to 10; found 'ten'",
                   "line 7:", "expected points for p5.explanation: a number from 0 to 5; found 6",
                   "line 8:", "found -1",
                   "line 9:", "a second row (the first is on line 2)",
                   "line 10: ivan_3,Ivan,p5.explanation", "expected 6 fields", "found 3 fields"]:
        assert needle in msg, f"{needle!r} not in:\n{msg}"
    assert "line 2:" not in msg and "line 11:" not in msg
    if existing:
        assert (out_dir / "manual.json").read_bytes() == before
    else:
        assert not (out_dir / "manual.json").exists()


def test_import_refuses_missing_columns(out_dir, tmp_path):
    sheet = tmp_path / "cols.csv"
    _write_csv(sheet, [["ada_1", "p2.diagram", "3"]], header=("id", "check", "score"))
    with pytest.raises(CsvImportError) as info:
        import_csv(out_dir, sheet, "carla")
    msg = str(info.value)
    assert "line 1: id,check,score" in msg and "missing column(s) points, comment" in msg
    assert "expected the header id,student,check,max_points,points,comment" in msg
    assert not (out_dir / "manual.json").exists()


def test_import_accepts_excel_bom_and_crlf(out_dir, tmp_path):
    sheet = tmp_path / "excel.csv"
    sheet.write_bytes("\ufeffid,student,check,max_points,points,comment\r\nada_1,Ada,p2.diagram,10,7,ok\r\n\r\n"
                      .encode("utf-8"))
    assert import_csv(out_dir, sheet, "carla").saved == 1
    assert ManualStore(out_dir).get("ada_1", "p2.diagram").points == 7


def test_manual_checks_come_from_results(out_dir):
    checks = outdir.manual_checks(outdir.result(out_dir, "ada_1"))
    assert {c: m.max_points for c, m in checks.items()} == {"p2.diagram": 10.0, "p5.explanation": 5.0}
    assert outdir.submission_ids(out_dir) == ["ada_1", "grace_2", "ivan_3"]
    assert Result.read(out_dir / "ivan_3").summary.notebook_sha256 is None


def test_store_keeps_the_mode_a_ta_gave_it(out_dir):
    store = ManualStore(out_dir)
    store.set("ada_1", "p2.diagram", 3, "", "ana")
    (out_dir / "manual.json").chmod(0o660)  # shared with the TAs' group
    store.set("ada_1", "p2.diagram", 4, "", "ana")
    assert (out_dir / "manual.json").stat().st_mode & 0o777 == 0o660
    assert store.get("ada_1", "p2.diagram").points == 4
