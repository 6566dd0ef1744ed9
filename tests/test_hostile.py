"""Hostile and broken submissions (fixtures/notebooks/hostile.py): each ends as a result with a named
status and a reason a TA understands; none changes another student's result or the grader's files.

One mixed batch (the hostile notebooks, 4 correct ones and a victim) runs with 3 workers; the correct
ones must get exactly the verdicts they get among well-behaved notebooks (the catalog batch of
tests/conftest.py). Broken files get their own batch.

No verdict depends on how fast the machine is: the notebooks whose point is a time limit (TIMED: a
cell that never ends, sleeps past the budget) run in a small batch of their own with short limits that
only they reach (the cell limit is three times each sleep; the budget is the sum of the sleeps), and the
others run with the default limits, so a loaded machine (a fork bomb up to its process limit, a
gigabyte printed) is judged on what the code did, not on when it was stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build
from fixtures.notebooks.hostile import BROKEN, HOSTILE, build_hostile, write_broken

CORRECT = ("correct_layer_prehook", "correct_pca_lowrank", "correct_ln_prehook", "wrong_site_mlp")
# The hostile notebooks whose verdict is a time limit, each in a batch of its own with limits that give that
# verdict however loaded the machine is: a slow start only brings the budget sooner for the 4 sleeps of 15 s,
# and leaves the infinite loop 870 s of budget after its cell limit.
TIMED = {"infinite_loop": ["--cell-timeout", "30", "--timeout", "900"],
         "sleep_past_budget": ["--cell-timeout", "45", "--timeout", "60"]}
LIMITS = ["--cell-timeout", "20", "--timeout", "60"]  # the broken files: none runs long
ISOLATED = os.geteuid() == 0  # the fork bomb is only bounded where kernels run as their own uid


def _grade(args: list[str]) -> int:
    from grader.cli import main

    return main(args)


@pytest.fixture(scope="session")
def mixed(tmp_path_factory) -> dict:
    """The mixed batch: every hostile notebook but TIMED, 4 correct ones and a victim, 3 workers, default
    limits; and TIMED in a batch of their own with short limits. `where[name]` is the --out holding name."""
    root = tmp_path_factory.mktemp("hostile")
    src, out = root / "submissions", root / "grading"
    src.mkdir()
    timed_src = {name: root / f"timed-{name}" for name in TIMED}
    timed_out = {name: root / f"timed-{name}-grading" for name in TIMED}
    for folder in timed_src.values():
        folder.mkdir()
    other = src / "victim.ipynb"  # another student's submission, which one hostile notebook reads
    nbformat.write(build("correct_numpy_svd"), str(other))
    for name in CORRECT:
        nbformat.write(build(name), str(src / f"{name}.ipynb"))
    names = [n for n, h in HOSTILE.items() if ISOLATED or not h.isolated_only]
    for name in names:
        nbformat.write(build_hostile(name, out_root=out, other_student=other),
                       str((timed_src[name] if name in TIMED else src) / f"{name}.ipynb"))
    # the timed batches mostly wait for their limits: they run beside the mixed one, each in its own process
    timed = {name: subprocess.Popen([sys.executable, "-m", "grader.cli", str(timed_src[name]), "--out",
                                     str(timed_out[name]), "--workers", "1", *limits],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, limits in TIMED.items()}
    try:
        assert _grade([str(src), "--out", str(out), "--workers", "3"]) == 0
    finally:
        logs = {name: proc.communicate(timeout=900)[0] for name, proc in timed.items()}
    for name, proc in timed.items():
        assert proc.returncode == 0, logs[name][-3000:]
    where = {p.stem: out for p in src.glob("*.ipynb")} | {name: timed_out[name] for name in TIMED}
    return {"out": out, "src": src, "names": names, "where": where, "srcs": (src, *timed_src.values())}


def res(out: Path, sid: str) -> dict:
    return json.loads((out / sid / "results.json").read_text())


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_notebook_gets_its_status_and_reason(mixed, name):
    if name not in mixed["names"]:
        pytest.skip("runs only where kernels are isolated (the grader runs as root)")
    h = HOSTILE[name]
    extra = res(mixed["where"][name], name)["extra_data"]
    if h.status is not None:
        assert extra["status"] == h.status, extra["reason"]
    assert h.reason in extra["reason"], extra["reason"]
    for flag in h.flags:
        assert extra[flag], flag
    page = (mixed["where"][name] / name / "report.html").read_text()
    assert h.reason.replace("'", "&#39;") in page  # the TA reads the same reason on the report


def test_every_submission_of_the_mixed_batch_has_a_result(mixed):
    ids = {p.stem for src in mixed["srcs"] for p in src.glob("*.ipynb")}
    assert {p.parent.name for out in set(mixed["where"].values()) for p in out.glob("*/results.json")} == ids
    assert len(ids) == len(mixed["names"]) + len(CORRECT) + 1


def test_correct_notebooks_score_as_they_do_without_hostile_neighbours(mixed, batch):
    """`batch` graded the same notebooks among well-behaved ones (tests/conftest.py)."""
    for name in CORRECT:
        together, alone = res(mixed["out"], name), res(batch, name)
        verdicts = lambda r: [(t["name"], t["score"], t.get("status")) for t in r["tests"]]  # noqa: E731
        assert verdicts(together) == verdicts(alone)
        assert together["score"] == alone["score"]
        assert together["extra_data"]["captures_site"] == alone["extra_data"]["captures_site"]
        if name != "correct_pca_lowrank":  # its random start moves the reported worst angle by 0.01 degrees
            assert [t["output"] for t in together["tests"]] == [t["output"] for t in alone["tests"]]


def test_grader_files_and_host_are_untouched(mixed):
    out = mixed["out"]
    assert not (out / "evil").exists()
    assert (out / "grades.csv").is_file() and (out / "index.html").is_file()
    assert not Path("/tmp/qgrader-hostile-was-here").exists() or not ISOLATED
    victim = res(out, "victim")
    assert victim["score"] == 85


def test_reading_another_student_and_the_network_fail(mixed):
    if not ISOLATED:
        pytest.skip("file and network isolation need root")
    out = mixed["out"]
    read = json.loads((out / "read_other_student" / "execution.json").read_text())
    err = next(c for c in read["cells"] if c["ename"])
    assert err["ename"] in ("FileNotFoundError", "PermissionError")
    net = json.loads((out / "network" / "execution.json").read_text())
    assert any("unreachable" in (c["evalue"] or "") for c in net["cells"] if c["ename"])


def test_importing_the_reference_earns_no_credit_for_what_it_computes(mixed):
    r = res(mixed["out"], "import_reference")
    assert r["extra_data"]["uses_reference"]
    by = {t["name"].split(":")[0]: t for t in r["tests"]}
    assert by["p3.captures_match"]["score"] == 0 and "imports the grader's own code" in by["p3.captures_match"]["output"]
    assert by["p2.model_printed"]["score"] == 5


def test_tampering_is_not_trusted(mixed):
    for name in ("patch_register_hook", "remove_recorder", "bypass_recorder"):
        r = res(mixed["out"], name)
        assert r["score"] == 0 and r["extra_data"]["status"] == "tampered"
        assert all("Not graded" in t["output"] for t in r["tests"])


def test_outputs_are_capped(mixed):
    rec = json.loads((mixed["out"] / "print_1gb" / "execution.json").read_text())
    assert max(c["output_truncated_bytes"] for c in rec["cells"]) > 500 << 20
    assert (mixed["out"] / "print_1gb" / "executed.ipynb").stat().st_size < 2 << 20


def test_broken_files(tmp_path):
    src, out = tmp_path / "broken", tmp_path / "grading"
    write_broken(src)
    assert _grade([str(src), "--out", str(out), "--workers", "2", *LIMITS]) == 0
    for filename, (status, phrase) in BROKEN.items():
        sid = Path(filename).stem
        extra = res(out, sid)["extra_data"]
        assert extra["status"] == status, (filename, extra)
        assert phrase in extra["reason"], (filename, extra["reason"])
    assert not Path("/tmp/qgrader-zip-escape.txt").exists()


def _descendants(root: int) -> dict[int, str]:
    """The live processes below `root` (pid -> command line), read from /proc: this batch's own workers and
    kernels, not those of batches that other test processes run at the same time."""
    parent, cmdline = {}, {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            cmdline[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        parent[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the command's (name)
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                found[child] = cmdline[child]
                frontier.append(child)
    return found


def _alive(pids: dict[int, str], *words: str) -> list[str]:
    """Which of `pids` whose command line has all `words` still run (a zombie has no command line)."""
    left = []
    for pid, cmd in pids.items():
        try:
            now = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if now == cmd and all(w in cmd for w in words):
            left.append(cmd)
    return left


def test_kill_minus_9_then_resume_grades_everyone_exactly_once(tmp_path):
    src, out = tmp_path / "subs", tmp_path / "grading"
    src.mkdir()
    names = ["correct_layer_prehook", "wrong_site_mlp", "no_centering"]
    for name in names:
        nbformat.write(build(name), str(src / f"{name}.ipynb"))
    cmd = [sys.executable, "-m", "grader.cli", str(src), "--out", str(out), "--workers", "1", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    below: dict[int, str] = {}
    while time.monotonic() < deadline and not (list(out.glob("*/results.json"))
                                               and any("grader.run.worker" in c for c in below.values())):
        time.sleep(0.3)
        below = _descendants(proc.pid)  # a worker (and its kernel) grading the next submission
    assert any("grader.run.worker" in c for c in below.values()), below
    os.kill(proc.pid, signal.SIGKILL)  # the batch process only: its workers must die with it
    proc.wait()
    finished = {p.parent.name: p.read_bytes() for p in out.glob("*/results.json")}
    assert 1 <= len(finished) < len(names)
    time.sleep(3)
    assert not _alive(below, "grader.run.worker"), "workers must die with the batch"
    assert not _alive(below, "ipykernel_launcher"), "kernels must die with their worker"
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert f"resuming: {len(finished)} submission(s) already graded" in resumed.stdout
    assert resumed.stdout.count("] ") == len(names) - len(finished)  # one progress line per newly graded
    after = {p.parent.name: p.read_bytes() for p in out.glob("*/results.json")}
    assert set(after) == set(names)
    assert all(after[k] == v for k, v in finished.items())
