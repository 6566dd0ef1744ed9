"""Ctrl-C during `grade`, then `grade --resume`, with a real SIGINT to a real `grade` process group.

One batch of five cheap notebooks on 2 workers; the first (by id) sleeps in its first cell, so it is
certainly running when the signal comes. The signal is sent once the first progress line shows a
finished submission. Then one submission that never started is given a grader-error result (the real
`record_failure` the batch writes when a worker dies), the sleeper is replaced by a plain notebook, and
`grade --resume` runs without --rubric and --canvas-assignment (they are recorded in grading.json).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from fixtures.notebooks import build

SLEEPER = "a_sleeper"
LATE = "zeta_555"  # Canvas marked it LATE: the rubric's [late] policy takes 1 point
NOTEBOOKS = {SLEEPER: "correct_layer_prehook", "b_first": "correct_layer_prehook", "c_site": "wrong_site_mlp",
             "d_ln": "correct_ln_prehook", LATE: "no_centering"}
FILES = {sid: f"{sid}.ipynb" for sid in NOTEBOOKS} | {LATE: "zeta_LATE_555_666_hw.ipynb"}
RUBRIC = '[checks."p1.model_loaded"]\npoints = 7\n\n[late]\npoints = 1\n'  # 102 points in all
COLUMN = "Residual stream (4242)"
STOP_WITHIN_S = 10  # the bar: Ctrl-C stops a batch within 10 s


def _sleeping(name: str):
    nb = build(name)
    cell = new_code_cell("import time\ntime.sleep(3600)  # still running when the batch is interrupted")
    cell.id = "sleeper"
    nb.cells.insert(0, cell)
    return nb


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _status(out: Path, sid: str, name: str) -> str | None:
    path = out / sid / name
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data.get("status") or data.get("extra_data", {}).get("status")


def _detail(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "grades_detail.csv").read_text())))


def _graded_lines(stdout: str) -> list[str]:
    return [line.split()[1] for line in stdout.splitlines() if line.startswith("[") and "/" in line.split()[0]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("interrupt")
    src, out = root / "subs", root / "grading"
    src.mkdir()
    for sid, name in NOTEBOOKS.items():
        nbformat.write(_sleeping(name) if sid == SLEEPER else build(name), str(src / FILES[sid]))
    (root / "rubric.toml").write_text(RUBRIC)
    args = [str(src), "--out", str(out), "--workers", "2", "--no-report", "--rubric", str(root / "rubric.toml"),
            "--canvas-assignment", COLUMN]
    stderr_path = root / "stderr.txt"
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "grader.cli", *args], stdout=subprocess.PIPE, stderr=err,
                                text=True, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                                  daemon=True)
        reader.start()
        seen = []
        try:
            while True:  # wait for the first progress line: one submission finished
                line = lines.get(timeout=600)
                assert line is not None, "grade ended before the interrupt:\n" + "".join(seen) + stderr_path.read_text()
                seen.append(line)
                if line.startswith("[1/5]"):
                    break
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
            rc = proc.wait(timeout=STOP_WITHIN_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(timeout=30)
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    stopped = {"rc": rc, "stdout": "".join(seen), "stderr": stderr_path.read_text()}
    finished = sorted(sid for sid in NOTEBOOKS if (out / sid / "results.json").is_file())
    snapshot = {sid: _files(out / sid) for sid in finished}
    class_outputs = {name: (out / name).is_file() for name in ("grades.csv", "grades_detail.csv", "index.html")}
    canvas_rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text()))) if class_outputs["grades.csv"] else []
    detail_ids = sorted(r["submission"] for r in _detail(out)) if class_outputs["grades_detail.csv"] else []
    interrupted = sorted(sid for sid in NOTEBOOKS if _status(out, sid, "execution.json") == "interrupted")
    interrupted_state = {sid: ((out / sid / "results.json").exists(),
                               json.loads((out / sid / "execution.json").read_text())["reason"]) for sid in interrupted}
    record = json.loads((out / "grading.json").read_text())

    # A submission that never started gets a grader-error result, as the batch writes when a worker dies.
    from grader.intake.discovery import Discovery
    from grader.pipeline import record_failure
    from grader.settings import Settings

    not_started = [sid for sid in NOTEBOOKS if sid not in finished and sid not in interrupted]
    errored = not_started[-1]
    sub = next(s for s in Discovery().find([src / FILES[errored]]))
    record_failure(sub, out / errored, "the grader's worker failed (exit -9): test", 1.0, Settings(report=False))
    assert _status(out, errored, "results.json") == "grader_error"

    nbformat.write(build(NOTEBOOKS[SLEEPER]), str(src / FILES[SLEEPER]))  # the resumed run ends
    resumed = subprocess.run([sys.executable, "-m", "grader.cli", str(src), "--out", str(out), "--workers", "2",
                              "--no-report", "--resume"], capture_output=True, text=True, timeout=900)
    return {"root": root, "src": src, "out": out, "args": args, "stopped": stopped, "finished": finished,
            "snapshot": snapshot, "class_outputs": class_outputs, "canvas_rows": canvas_rows, "detail_ids": detail_ids,
            "interrupted": interrupted, "interrupted_state": interrupted_state, "not_started": not_started, "errored": errored, "record": record,
            "resumed": resumed}


def test_ctrl_c_stops_within_10_s_with_130_and_says_how_to_resume(run):
    stopped = run["stopped"]
    assert stopped["rc"] == 130, stopped["stdout"][-2000:] + stopped["stderr"][-2000:]
    assert "Traceback" not in stopped["stderr"], stopped["stderr"][-3000:]
    command = shlex.join(["grade", *run["args"], "--resume"])
    assert f"To grade the rest, run: {command}" in stopped["stderr"], stopped["stderr"][-2000:]
    assert f"stopped by SIGINT: {len(run['finished'])} graded, {len(run['interrupted'])} interrupted while running, " \
           f"{len(run['not_started'])} not started" in stopped["stdout"]


def test_running_submissions_are_interrupted_not_graded_and_queued_ones_never_start(run):
    out = run["out"]
    assert SLEEPER in run["interrupted"], (run["interrupted"], run["finished"])
    assert run["not_started"], "5 notebooks on 2 workers: some were still queued at the first finished one"
    for sid, (has_result, reason) in run["interrupted_state"].items():
        assert not has_result, f"{sid} was interrupted: it must not have a result (it is not done)"
        assert "interrupted (SIGINT)" in reason
    # nothing queued started after the signal: every submission either finished, was running, or never ran
    assert set(run["finished"]) | set(run["interrupted"]) | set(run["not_started"]) == set(NOTEBOOKS)
    assert len(run["interrupted"]) <= 2  # at most the two that were running
    for sid in run["finished"]:
        assert _status(out, sid, "results.json") not in ("grader_error", "interrupted")


def test_class_outputs_hold_exactly_what_finished(run):
    assert all(run["class_outputs"].values()), run["class_outputs"]
    header, possible, *rows = run["canvas_rows"]
    assert header[-1] == COLUMN and possible[-1] == "102"  # the run's --canvas-assignment and --rubric
    assert len(rows) == len(run["finished"]) and run["detail_ids"] == run["finished"]


def test_grading_json_records_the_run_before_grading(run):
    from grader.settings import Settings, grader_version

    record = run["record"]
    assert set(record) == {"grader_version", "canvas_assignment", "rubric", "settings"}
    assert record["grader_version"] == grader_version()
    assert record["canvas_assignment"] == COLUMN
    assert record["rubric"] == str((run["root"] / "rubric.toml").resolve())
    assert Settings.from_json(record["settings"]).workers == 2 and record["settings"]["report"] is False


def test_resume_grades_exactly_the_interrupted_the_unstarted_and_the_grader_errors(run):
    resumed, out = run["resumed"], run["out"]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    expected = sorted(set(NOTEBOOKS) - set(run["finished"]))
    assert sorted(_graded_lines(resumed.stdout)) == expected
    assert f"resuming: {len(run['finished'])} submission(s) already graded in {out}, {len(expected)} to go " \
           "(1 grader error(s) graded again)" in resumed.stdout
    for sid in NOTEBOOKS:
        assert _status(out, sid, "results.json") not in (None, "grader_error", "interrupted"), sid
    for sid, files in run["snapshot"].items():
        assert _files(out / sid) == files, f"{sid} finished before the interrupt and must not change"


def _late_penalties(out: Path) -> dict[str, str]:
    return {r["submission"]: r["late_penalty"] for r in _detail(out)}


def test_resume_and_summarize_reuse_the_recorded_column_and_rubric(run):
    out = run["out"]
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert rows[0][-1] == COLUMN  # --resume was given neither option
    detail = _detail(out)
    assert sorted(r["submission"] for r in detail) == sorted(NOTEBOOKS)
    assert {r["submission"]: r["max_score"] for r in detail} == {sid: "102" for sid in NOTEBOOKS}  # every one graded with it
    assert _late_penalties(out)[LATE] == "1" and "has no Canvas id" not in run["resumed"].stdout
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "summarize", str(out), "--canvas-assignment",
                           "Another (7)"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert rows[0][-1] == "Another (7)"  # the explicit option wins
    assert _late_penalties(out)[LATE] == "1"  # the recorded rubric's [late] policy still applies


def test_summarize_checks_its_rubric_before_writing(run, tmp_path):
    out = run["out"]
    bad = tmp_path / "late.toml"
    bad.write_text("[late]\npenalty = 10\n")
    before = {name: (out / name).read_bytes() for name in ("grades.csv", "grades_detail.csv", "index.html")}
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "summarize", str(out), "--rubric", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "[late] penalty is a fraction" in proc.stderr and "nothing was written" in proc.stderr
    assert {name: (out / name).read_bytes() for name in before} == before


def test_the_default_column_is_the_assignment_total_with_one_note_not_a_warning(run, tmp_path):
    import shutil

    from grader.report.gradebook import DEFAULT_ASSIGNMENT

    copy = tmp_path / "unrecorded"
    shutil.copytree(run["out"], copy)
    (copy / "grading.json").unlink()  # graded before grading.json existed: nothing recorded
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "summarize", str(copy)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO((copy / "grades.csv").read_text())))
    assert rows[0][-1] == DEFAULT_ASSIGNMENT == "Residual stream on the sphere"
    assert _late_penalties(copy)[LATE] == "0"  # no rubric recorded, none given: the default has no late policy
    notes = [line for line in proc.stderr.splitlines() if "Canvas id" in line]
    assert len(notes) == 1 and notes[0].startswith("note: ") and "--canvas-assignment 'Name (id)'" in notes[0]
    assert not [line for line in proc.stderr.splitlines() if line.startswith("warning:") and "Canvas" in line]
