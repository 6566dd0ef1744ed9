"""`grade rejudge OUT`: judge the stored executions again without running a notebook, and
`grade PATHS --only ID...`: execute again only the named submissions inside an existing --out.

The rejudge tests grade no notebook of their own: each works on a copy of four submissions of the catalog
batch (tests/conftest.py `batch`, shared with test_grading.py and others): two correct ones, one hooking
the MLP output and the Canvas-named late one, with the batch's grading.json. The last test grades one
notebook of the batch again and finds the same results.json (the kernel is seeded).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build
from grader.cli import main

from tests.conftest import CANVAS_ID

SUBSET = ("correct_layer_prehook", "wrong_site_mlp", "correct_numpy_svd", CANVAS_ID)
TIMING = ("execution_time",)  # the only field of results.json that may differ: execution + judging seconds
CHANGED = "p3.hook_site"


@pytest.fixture
def copy(batch, tmp_path) -> Path:
    out = tmp_path / "grading"
    out.mkdir()
    shutil.copy2(batch / "grading.json", out / "grading.json")
    for sid in SUBSET:
        shutil.copytree(batch / sid, out / sid)  # copy2: the files keep their times
    assert main(["summarize", str(out)]) == 0
    return out


def graded_seconds(out: Path) -> float:
    """What grading these submissions took in the batch: the sum of their results' execution_time."""
    return sum(json.loads((out / sid / "results.json").read_text())["execution_time"] for sid in SUBSET)


def ids(out: Path) -> list[str]:
    return sorted(p.parent.name for p in out.glob("*/results.json"))


def results(out: Path) -> dict[str, bytes]:
    return {sid: (out / sid / "results.json").read_bytes() for sid in ids(out)}


def untimed(raw: bytes) -> dict:
    data = json.loads(raw)
    for key in TIMING:
        data.pop(key)
    return data


def canvas(out: Path) -> dict[str, list[str]]:
    """grades.csv's rows by submission id (its ID column is the student's id where Canvas named one)."""
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    by_id = {json.loads((out / sid / "submission.json").read_text()).get("student_id") or sid: sid for sid in ids(out)}
    return {r[0] if r[0] == "Points Possible" else by_id[r[1]]: r for r in rows[1:]}


def with_manual_points(out: Path, tmp_path: Path) -> bytes:
    """A TA grades every manual item (grade manual --export/--import); returns manual.json's bytes."""
    export = tmp_path / "manual.csv"
    assert main(["manual", str(out), "--export", str(export)]) == 0
    rows = list(csv.DictReader(export.open()))
    for r in rows:
        r["points"] = str(float(r["max_points"]) - 1)
    with export.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["manual", str(out), "--import", str(export), "--grader", "ta"]) == 0
    return (out / "manual.json").read_bytes()


def test_rejudge_without_a_change_is_identical_apart_from_timings_and_fast(copy, tmp_path):
    budget = graded_seconds(copy) / 10
    manual = with_manual_points(copy, tmp_path)
    assert main(["summarize", str(copy)]) == 0
    before, csv_before = results(copy), (copy / "grades.csv").read_bytes()
    t0 = time.monotonic()
    assert main(["rejudge", str(copy)]) == 0
    seconds = time.monotonic() - t0
    after = results(copy)
    assert sorted(after) == sorted(before) == sorted(SUBSET)
    for sid in before:
        assert untimed(after[sid]) == untimed(before[sid]), sid
        assert untimed_bytes(after[sid]) == untimed_bytes(before[sid]), sid  # the same writer, byte for byte
    assert (copy / "manual.json").read_bytes() == manual  # the TAs' points are never touched
    assert (copy / "grades.csv").read_bytes() == csv_before
    assert seconds < budget, (seconds, budget * 10)


def test_rejudge_in_two_processes_writes_what_one_process_writes(copy):
    before, csv_before = results(copy), (copy / "grades.csv").read_bytes()
    assert main(["rejudge", str(copy), "--workers", "2"]) == 0
    after = results(copy)
    assert sorted(after) == sorted(before)
    for sid in before:
        assert untimed_bytes(after[sid]) == untimed_bytes(before[sid]), sid
    assert (copy / "grades.csv").read_bytes() == csv_before


def untimed_bytes(raw: bytes) -> bytes:
    """results.json's bytes with the value of execution_time blanked."""
    blanked, n = re.subn(rb'"execution_time": [0-9.eE+-]+', b'"execution_time": _', raw)
    assert n == 1
    return blanked


def test_rejudge_with_one_changed_check_changes_exactly_its_points(copy, tmp_path):
    budget = graded_seconds(copy) / 10
    manual = with_manual_points(copy, tmp_path)
    assert main(["summarize", str(copy)]) == 0
    before, csv_before = results(copy), canvas(copy)
    rubric = tmp_path / "rubric.toml"
    rubric.write_text(f'[checks."{CHANGED}"]\npoints = 12\n')  # an override: the pack's other values stay
    # summarize does not silently ignore the new points: it names rejudge and writes nothing
    assert main(["summarize", str(copy), "--rubric", str(rubric)]) == 2
    assert canvas(copy) == csv_before
    t0 = time.monotonic()
    assert main(["rejudge", str(copy), "--rubric", str(rubric)]) == 0
    assert time.monotonic() - t0 < budget
    after, csv_after = results(copy), canvas(copy)
    delta = {}
    for sid in before:
        old, new = untimed(before[sid]), untimed(after[sid])
        old_tests = {t["name"]: t for t in old["tests"]}
        new_tests = {t["name"]: t for t in new["tests"]}
        assert sorted(old_tests) == sorted(new_tests)
        for name, t in old_tests.items():
            if name.startswith(CHANGED + ":"):
                assert t["max_score"] == 10 and new_tests[name]["max_score"] == 12
                assert new_tests[name]["score"] == pytest.approx(t["score"] * 1.2)
                delta[sid] = new_tests[name]["score"] - t["score"]
            else:
                assert new_tests[name] == t, (sid, name)
        assert new["score"] == pytest.approx(old["score"] + delta[sid])
        old_checks = {c["id"]: c for c in old["extra_data"]["checks"]}
        for c in new["extra_data"]["checks"]:
            if c["id"] != CHANGED:
                assert c == old_checks[c["id"]]
    assert sorted(delta.values()) == [0, 2, 2, 2]  # the MLP hook fails the site check; the correct ones pass
    assert float(csv_after["Points Possible"][5]) == float(csv_before["Points Possible"][5]) + 2
    for sid, row in csv_before.items():
        if sid == "Points Possible":
            continue
        assert float(csv_after[sid][5]) == pytest.approx(float(row[5]) + delta[sid])
        assert csv_after[sid][:5] == row[:5]
    assert (copy / "manual.json").read_bytes() == manual
    assert json.loads((copy / "grading.json").read_text())["rubric"] == str(rubric.resolve())
    assert main(["summarize", str(copy)]) == 0  # the rejudged rubric is now the recorded one
    assert canvas(copy) == csv_after


def test_rejudge_only_and_grade_only_touch_the_named_submissions(copy):
    names = ids(copy)
    target, others = names[0], names[1:]
    stamp = {sid: (copy / sid / "results.json").stat().st_mtime_ns for sid in names}
    before = results(copy)
    assert main(["rejudge", str(copy), "--only", target]) == 0
    for sid in others:
        assert (copy / sid / "results.json").stat().st_mtime_ns == stamp[sid]
    assert (copy / target / "results.json").stat().st_mtime_ns != stamp[target]
    assert untimed(results(copy)[target]) == untimed(before[target])
    assert main(["rejudge", str(copy), "--only", "nobody_1"]) == 2  # an unknown id: nothing is written

    executed = (copy / target / "execution.json").stat().st_mtime_ns
    source = Path(json.loads((copy / target / "submission.json").read_text())["source"])
    assert source.exists(), source  # what the batch was pointed at (the notebook or its folder)
    assert main([str(source), "--out", str(copy), "--workers", "1", "--only", target]) == 0
    assert (copy / target / "execution.json").stat().st_mtime_ns != executed  # executed again
    assert untimed(results(copy)[target])["score"] == untimed(before[target])["score"]
    for sid in others:
        assert (copy / sid / "results.json").read_bytes() == before[sid]
        assert (copy / sid / "results.json").stat().st_mtime_ns == stamp[sid]
    assert len(canvas(copy)) == 1 + len(SUBSET)  # the class outputs hold everyone
    assert main([str(source), "--out", str(copy), "--only", "nobody_1"]) == 2


def test_rejudge_judges_the_stored_carried_run_and_runs_none(copy):
    """wrong_site_mlp's Part 5 is judged again on the batch's carry/ run; without that run, rejudge executes
    nothing and says how to make it."""
    sid = "wrong_site_mlp"
    before = untimed(results(copy)[sid])
    assert before["extra_data"]["carried_forward"]["ran"] is True
    shutil.rmtree(copy / sid / "carry")
    assert main(["rejudge", str(copy), "--only", sid]) == 0
    after = untimed(results(copy)[sid])
    assert not (copy / sid / "carry").exists()  # no notebook ran
    assert "carried_forward" not in after["extra_data"]
    assert any("--only wrong_site_mlp" in n and "not judged again on correct captures" in n
               for n in after["extra_data"]["notes"]), after["extra_data"]["notes"]
    assert after["score"] == before["score"]  # its own Part 5 passed: nothing was credited from the carried run


def test_grading_a_notebook_again_gives_the_same_results_json(batch, tmp_path):
    """The kernel is seeded before the first cell (probe.seed_everything): torch.pca_lowrank, which draws
    random numbers, gives the same projections, feedback and results.json on a second run."""
    src = tmp_path / "again"
    src.mkdir()
    name = "correct_pca_lowrank"
    nbformat.write(build(name), str(src / f"{name}.ipynb"))
    out = tmp_path / "grading"
    assert main([str(src), "--out", str(out), "--workers", "1", "--no-report"]) == 0
    first, again = (untimed((d / name / "results.json").read_bytes()) for d in (batch, out))
    for data in (first, again):  # a second run's kernel takes its own time too
        data["extra_data"].pop("execution_seconds")
    assert again == first, (f"{name} graded twice gave different results.json (timings aside): "
                            f"first {json.dumps(first)[:400]}, again {json.dumps(again)[:400]}")
