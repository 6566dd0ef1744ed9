"""`grade slurm`: the scripts it writes, and a real job array on a real single-node Slurm.

The cluster (munged, slurmctld, slurmd; Debian's slurm-wlm and munge) is started by the module fixture
`cluster` in a temp dir, on free ports, as root, and stopped by its pid files in the teardown. Without
sbatch (or without root) those tests skip, unless QGRADER_REQUIRE_SLURM is set (.ci/run sets it):
then they fail.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from fixtures.notebooks import FAST, write_all

REQUIRED = bool(os.environ.get("QGRADER_REQUIRE_SLURM"))
DEADLINE = 900.0  # seconds a job may take before the test gives up (generous: 2 shared cores)
SLEEP = 15  # seconds the sleeper notebook sleeps: the window in which its task is cancelled (a loaded machine only widens it)
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _grade(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def _notebook(path: Path, source: str) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(source)], metadata={"kernelspec": KERNELSPEC}), str(path))
    return path


def _venv() -> list[str]:
    """--venv for this interpreter's virtual environment (none outside one: the absolute interpreter runs)."""
    return ["--venv", sys.prefix] if sys.prefix != sys.base_prefix else []


# ---- the scripts (no Slurm needed) -------------------------------------------------------------------


@pytest.fixture
def two_notebooks(tmp_path) -> Path:
    src = tmp_path / "class room"  # a space: every path in the scripts must be quoted
    src.mkdir()
    _notebook(src / "ann.ipynb", "print('ann')")
    _notebook(src / "bob.ipynb", "print('bob')")
    return src


def _stub_env(tmp_path: Path) -> Path:
    """A --venv whose `grade` prints its argv as JSON: what bash really passes to the grader."""
    venv = tmp_path / "stub venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f"export PATH={shlex.quote(str(venv / 'bin'))}:\"$PATH\"\n")
    stub = venv / "bin" / "grade"
    stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    stub.chmod(0o755)
    return venv


def test_scripts_are_absolute_quoted_and_run_each_task_on_its_shard(tmp_path, two_notebooks):
    out = tmp_path / "it's graded"
    rubric = tmp_path / "my rubric.toml"
    rubric.write_text('[checks."p5.gif"]\npoints = 5\n')
    venv = _stub_env(tmp_path)
    proc = _grade("slurm", two_notebooks, "--out", out, "--shards", "2", "--partition", "gpu", "--account", "def-pi",
                  "--time", "01:30:00", "--cpus-per-task", "3", "--mem", "24G", "--gres", "gpu:1",
                  "--sbatch-line", "#SBATCH --mail-type=END", "--activate", "true first", "--venv", venv,
                  "--model", "Qwen/Qwen3-4B", "--device", "cuda", "--memory", "0", "--no-report",
                  "--rubric", rubric, "--canvas-assignment", "Residual stream (123)")
    assert proc.returncode == 0, proc.stderr
    grade, summarize = out / "slurm" / "grade.sbatch", out / "slurm" / "summarize.sbatch"
    text = grade.read_text()
    assert (out / "slurm" / "logs").is_dir()  # Slurm does not create the folder of --output
    for line in ["#SBATCH --array=1-2", f'#SBATCH --output="{out}/slurm/logs/grade-%A_%a.out"',
                 "#SBATCH --partition=gpu", "#SBATCH --account=def-pi", "#SBATCH --time=01:30:00",
                 "#SBATCH --cpus-per-task=3", "#SBATCH --mem=24G", "#SBATCH --gres=gpu:1", "#SBATCH --mail-type=END",
                 "true first"]:
        assert line in text.splitlines(), f"expected the line {line!r} in grade.sbatch:\n{text}"
    assert str(grade) in proc.stdout and "--dependency=afterany:" in proc.stdout  # how to submit by hand
    for k in (1, 2):  # each task, as Slurm runs it: bash with the task id in the environment
        run = subprocess.run(["bash", str(grade)], capture_output=True, text=True, check=True,
                             env={**os.environ, "SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_JOB_ID": "77"})
        argv = json.loads(run.stdout.splitlines()[-1])
        assert argv[:3] == [str(two_notebooks), "--out", str(out)]
        assert argv[3:7] == ["--shard", f"{k}/2", "--resume", "--no-class-outputs"], argv
        options = " ".join(argv[7:])
        assert "--model Qwen/Qwen3-4B --device cuda --workers 3" in options, argv  # workers: the task's CPUs
        assert "--memory 0" in options and "--no-report" in options and f"--rubric {rubric}" in options, argv
        assert "--canvas-assignment" not in options  # only the summarize job writes grades.csv
    summary_text = summarize.read_text()
    assert "#SBATCH --gres" not in summary_text and "#SBATCH --cpus-per-task" not in summary_text
    assert "#SBATCH --account=def-pi" in summary_text and "#SBATCH --mail-type=END" in summary_text
    run = subprocess.run(["bash", str(summarize)], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout.splitlines()[-1]) == ["summarize", str(out), "--canvas-assignment",
                                                       "Residual stream (123)", "--rubric", str(rubric)]


def test_without_an_environment_the_scripts_run_this_interpreter(tmp_path, two_notebooks):
    proc = _grade("slurm", two_notebooks, "--out", tmp_path / "out", "--shards", "1")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "slurm" / "grade.sbatch").read_text()
    assert f"exec {shlex.quote(sys.executable)} -m grader.cli {shlex.quote(str(two_notebooks))}" in text
    assert "--workers 1" in text  # the cluster's one CPU per task, not this machine's count


@pytest.mark.parametrize("args, message", [
    (["--shards", "3"], "more array tasks than there are submissions (2)"),
    (["--shards", "2", "--only-task", "3"], "task numbers 1..2"),
    (["--shards", "2", "--sbatch-line=--qos=high"], "starting with '#SBATCH '"),
    (["--shards", "0"], "at least 1"),
])
def test_bad_options_are_usage_errors_and_write_nothing(tmp_path, two_notebooks, args, message):
    proc = _grade("slurm", two_notebooks, "--out", tmp_path / "out", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_folder_sbatch_cannot_read_is_refused(tmp_path, two_notebooks):
    proc = _grade("slurm", two_notebooks, "--out", tmp_path / "100%", "--shards", "1")
    assert proc.returncode == 2 and "cannot be written into an #SBATCH line" in proc.stderr, proc.stderr


def test_submit_without_sbatch_says_where_to_run_it(tmp_path, two_notebooks):
    bare = tmp_path / "bin"
    bare.mkdir()
    proc = _grade("slurm", two_notebooks, "--out", tmp_path / "out", "--shards", "2", "--submit",
                  env={"PATH": str(bare)})
    assert proc.returncode == 1 and "sbatch was not found on PATH" in proc.stderr, proc.stderr
    assert (tmp_path / "out" / "slurm" / "grade.sbatch").is_file()  # written: it can be submitted by hand


def test_grade_no_class_outputs_leaves_them_to_summarize(tmp_path):
    src = tmp_path / "nb"
    src.mkdir()
    _notebook(src / "tiny.ipynb", "print(1)")
    out = tmp_path / "out"
    proc = _grade(src, "--out", out, "--workers", "1", "--no-report", "--no-class-outputs")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (out / "tiny" / "results.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name in ("grades.csv", "grades_detail.csv", "index.html")]
    assert f"Class outputs left to `grade summarize {out}`" in proc.stdout


# ---- a real Slurm ------------------------------------------------------------------------------------


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"QGRADER_REQUIRE_SLURM is set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """Running (a zombie left for an init that does not reap counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Cluster:
    """A single-node Slurm in a temp dir: munged as the munge user, slurmctld and slurmd as root."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pid_files = [root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"]

    def start(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(mode=0o755)  # munged wants its socket's folder searchable by all
        key = munge / "munge.key"
        if shutil.which("mungekey"):
            subprocess.run(["mungekey", "-c", "-k", str(key)], check=True, capture_output=True)
        else:
            key.write_bytes(os.urandom(1024))
        shutil.chown(munge, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        socket_path = munge / "munge.socket"
        self._run(["runuser", "-u", "munge", "--", "munged", f"--socket={socket_path}", f"--key-file={key}",
                   f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                   f"--seed-file={munge / 'munged.seed'}"])
        for name in ("state", "spool", "log"):
            (self.root / name).mkdir()
        host = socket.gethostname()
        mem_mb = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
        self.conf.write_text("\n".join([
            "ClusterName=qgradertest", f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={socket_path}",
            f"StateSaveLocation={self.root / 'state'}", f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}", f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SchedulerType=sched/backfill", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "MpiDefault=none", "ReturnToService=2",
            "KillWait=10", "MinJobAge=3600",  # finished jobs stay visible to scontrol for the whole test
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN",
            "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
        self._run(["slurmctld", "-f", str(self.conf)])
        self._run(["slurmd", "-f", str(self.conf)])
        self._until(lambda: "idle" in self.out(["sinfo", "-h", "-N", "-o", "%T"], check=False), 60,
                    "the node to be idle in sinfo")

    def stop(self) -> None:
        """Cancel what is left, then stop the daemons by their pid files (munged last)."""
        if self.conf.exists():
            left = self.out(["squeue", "-h", "-o", "%A"], check=False).split()
            if left:
                subprocess.run(["scancel", *sorted(set(left))], env=self.env, capture_output=True)
                try:
                    self._until(lambda: not self.out(["squeue", "-h"], check=False).strip(), 60, "jobs to end")
                except AssertionError:
                    pass
        for pid_file in self.pid_files:
            try:
                pid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue
            end = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, 9)

    def out(self, cmd: list[str], check: bool = True) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode:
            raise AssertionError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr}\n{self.logs()}")
        return proc.stdout

    def _run(self, cmd: list[str]) -> None:
        self.out(cmd)

    def logs(self) -> str:
        tails = []
        for log in [*(self.root / "log").glob("*.log"), self.root / "munge" / "munged.log"]:
            if log.exists():
                tails.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(tails)

    def _until(self, ready, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while not ready():
            if time.monotonic() > end:
                raise AssertionError(f"waited {seconds:.0f} s for {what}\n{self.logs()}")
            time.sleep(0.5)

    def jobs(self, job_id: str) -> dict[str, dict[str, str]]:
        """{'<array>_<task>' or '<job>': scontrol's fields} for a job or every task of an array."""
        found = {}
        for line in self.out(["scontrol", "-o", "show", "job", job_id]).splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            task = fields.get("ArrayTaskId")
            found[f"{fields['ArrayJobId']}_{task}" if task and task != "(null)" else fields["JobId"]] = fields
        return found

    def wait(self, *job_ids: str, logs: Path | None = None) -> None:
        """Until none of the jobs is pending or running (DEADLINE), with the task logs on a timeout."""
        ids = ",".join(job_ids)
        try:
            self._until(lambda: not self.out(["squeue", "-h", "-j", ids, "-o", "%i"], check=False).strip(), DEADLINE,
                        f"jobs {ids} to end")
        except AssertionError as exc:
            tails = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((logs or self.root).glob("*.out")))
            raise AssertionError(f"{exc}{tails}") from None


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None or shutil.which("munged") is None:
        _unavailable("Slurm is not installed (apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        _unavailable("the test Slurm runs its daemons as root (SlurmUser=root, munged via runuser)")
    root = Path(tempfile.mkdtemp(prefix="qgrader-slurm-", dir="/tmp"))
    root.chmod(0o755)
    slurm = Cluster(root)
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()
        shutil.rmtree(root, ignore_errors=True)


def _graded_lines(log: Path) -> list[str]:
    """The submission ids a task's log reports as graded ('[i/n] <id> <status> ...')."""
    return re.findall(r"\[\d+/\d+\] (\S+)", log.read_text().replace("\r", "\n"))


def _shards(src: Path, n: int) -> dict[int, list[str]]:
    """{task: ids} as `grade --shard K/N` slices the submissions found in src."""
    from grader.intake.discovery import Discovery
    from grader.run.batch import shard

    discovery = Discovery()
    try:
        subs = discovery.find([src])
        return {k: [s.id for s in shard(subs, k, n)] for k in range(1, n + 1)}
    finally:
        discovery.cleanup()


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _gradebook(out: Path) -> dict[str, str]:
    """{ID: score} of grades.csv, the 'Points Possible' row left out."""
    rows = list(csv.reader((out / "grades.csv").open()))
    return {r[1]: r[-1] for r in rows[1:] if r[0] != "Points Possible"}


def _assert_gradebook_whole(out: Path, ids: list[str]) -> None:
    from grader.results import Result

    book = _gradebook(out)
    assert sorted(book) == sorted(ids), f"grades.csv should have one row per submission {sorted(ids)}, has {sorted(book)}"
    for sid in ids:
        assert float(book[sid]) == Result.read(out / sid).score, f"{sid}: grades.csv {book[sid]} vs its results.json"


@pytest.fixture(scope="module")
def array_run(cluster, tmp_path_factory):
    """6 notebooks graded by a 3-task array submitted by hand (`sbatch grade.sbatch`, as its header says),
    checked before the summarize job is submitted after it. One is a real fixture notebook (the model, the
    prompt, the plotting cell: its score is not 0); five are one-cell notebooks, so each task's grading
    takes seconds, not minutes: what is tested is the array, not the verdicts (tests/test_grading.py)."""
    src = tmp_path_factory.mktemp("slurm-class") / "submissions"
    write_all(src, list(FAST[:1]))
    for i in range(5):
        _notebook(src / f"student{i}.ipynb", f"print({i} * {i})")
    out = tmp_path_factory.mktemp("slurm-graded") / "grading out"  # sbatch must read the quoted log path
    proc = _grade("slurm", src, "--out", out, "--shards", "3", "--workers", "1", "--no-report", *_venv())
    assert proc.returncode == 0, proc.stderr
    array = cluster.out(["sbatch", "--parsable", str(out / "slurm" / "grade.sbatch")]).strip().split(";")[0]
    cluster.wait(array, logs=out / "slurm" / "logs")
    return src, out, array


def test_an_array_grades_every_submission_once_and_summarize_writes_the_class(cluster, array_run):
    src, out, array = array_run
    tasks = cluster.jobs(array)
    assert sorted(tasks) == [f"{array}_{k}" for k in (1, 2, 3)]
    for name, fields in tasks.items():
        assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), f"task {name}: {fields}"
    shards = _shards(src, 3)
    graded = []
    for k, ids in shards.items():
        lines = _graded_lines(out / "slurm" / "logs" / f"grade-{array}_{k}.out")
        assert sorted(lines) == sorted(ids), f"task {k} should grade its shard {ids}, its log reports {lines}"
        graded += lines
    assert sorted(graded) == sorted(set(graded)) and len(graded) == 6  # each exactly once, by one task
    assert all((out / sid / "results.json").is_file() for sid in graded)
    present = [n for n in ("grades.csv", "grades_detail.csv", "index.html") if (out / n).exists()]
    assert not present, f"array tasks must leave the class outputs to the summarize job, found {present}"
    summary = cluster.out(["sbatch", "--parsable", f"--dependency=afterany:{array}",
                           str(out / "slurm" / "summarize.sbatch")]).strip().split(";")[0]
    cluster.wait(summary, logs=out / "slurm" / "logs")
    assert cluster.jobs(summary)[summary]["JobState"] == "COMPLETED", (out / "slurm" / "logs" / f"summarize-{summary}.out").read_text()
    _assert_gradebook_whole(out, graded)
    assert (out / "index.html").is_file() and (out / "grades_detail.csv").is_file()


def test_a_cancelled_task_reruns_alone_and_loses_nothing(cluster, array_run):
    src, out, _ = array_run
    before = {sid: _tree(out / sid) for sid in _shards(src, 3)[1] + _shards(src, 3)[2] + _shards(src, 3)[3]}
    assert len(before) == 6 and all("results.json" in t for t in before.values())
    _notebook(src / "sleeper.ipynb", f"import time\ntime.sleep({SLEEP})")  # a 7th student, mid-run when cancelled
    k = next(k for k, ids in _shards(src, 3).items() if "sleeper" in ids)
    common = ["slurm", src, "--out", out, "--shards", "3", "--workers", "1", "--no-report", *_venv()]
    proc = _grade(*common, "--submit", env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    array, summary = re.search(r"submitted: array job (\d+) .* then job (\d+)", proc.stdout).groups()
    assert f"squeue -j {array},{summary}" in proc.stdout and f"grade-{array}_<task>.out" in proc.stdout
    # cancel task k while it grades the sleeper (its folder exists once the batch started it)
    cluster._until(lambda: (out / "sleeper").is_dir(), DEADLINE, f"task {k} to start grading the sleeper")
    assert not (out / "sleeper" / "results.json").exists()
    cluster.out(["scancel", f"{array}_{k}"])
    cluster.wait(array, summary, logs=out / "slurm" / "logs")
    states = {name: f["JobState"] for name, f in cluster.jobs(array).items()}
    assert states == {f"{array}_{t}": ("CANCELLED" if t == k else "COMPLETED") for t in (1, 2, 3)}, states
    assert {sid: _tree(out / sid) for sid in before} == before
    # the rerun of task k alone, as the printed instructions say
    proc = _grade(*common, "--only-task", str(k), "--submit", env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    rerun, summary = re.search(r"submitted: array job (\d+) \(task\(s\) (\d+) of 3\), then job (\d+)",
                               proc.stdout).group(1, 3)
    assert f"task(s) {k} of 3" in proc.stdout
    cluster.wait(rerun, summary, logs=out / "slurm" / "logs")
    tasks = cluster.jobs(rerun)
    assert sorted(tasks) == [f"{rerun}_{k}"] and tasks[f"{rerun}_{k}"]["JobState"] == "COMPLETED", tasks
    assert _graded_lines(out / "slurm" / "logs" / f"grade-{rerun}_{k}.out") == ["sleeper"]  # the rest: resumed
    assert {sid: _tree(out / sid) for sid in before} == before, "the other submissions' files changed"
    from grader.results import Result

    sleeper = Result.read(out / "sleeper")
    assert sleeper is not None and sleeper.status == "ok", sleeper and sleeper.summary
    assert cluster.jobs(summary)[summary]["JobState"] == "COMPLETED"
    _assert_gradebook_whole(out, [*before, "sleeper"])
