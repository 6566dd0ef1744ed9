"""Grade many submissions: shard, resume, run workers in parallel, never lose a grade.

Each submission runs in its own worker process (grader.run.worker). A worker that crashes, hangs or is
killed still leaves a result: the batch writes a `grader_error` result with the reason. Results are
complete when out/<id>/results.json exists, so `--resume` skips exactly the finished ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from grader.execute.config import ExecuteConfig
from grader.intake.submission import Submission
from grader.pipeline import record_failure
from grader.results import Result, is_complete
from grader.run.worker import PARENT_ENV, Job
from grader.settings import Settings
from grader.status import Status


@dataclass
class BatchConfig:
    out: Path = Path("grading")
    settings: Settings = field(default_factory=Settings)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    resume: bool = False
    shard: tuple[int, int] | None = None  # (k, n): the k-th (1-based) of n slices
    worker_margin: float = 600.0  # seconds a worker may take beyond the notebook budget


@dataclass
class Outcome:
    id: str
    status: str
    score: float | None
    max_score: float | None
    seconds: float
    reason: str = ""
    skipped: bool = False


def parse_shard(text: str) -> tuple[int, int]:
    """'3/10' -> (3, 10): the 3rd (1-based) of 10 deterministic slices; ValueError says what was expected."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects K/N such as 2/8, got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard(subs: list[Submission], k: int, n: int) -> list[Submission]:
    """The k-th (1-based) of n deterministic slices of the submissions, by id."""
    parse_shard(f"{k}/{n}")
    ordered = sorted(subs, key=lambda s: s.id)
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


class Batch:
    def __init__(self, cfg: BatchConfig, log=print):
        self.cfg = cfg
        self.log = log
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()

    def run(self, subs: list[Submission]) -> list[Outcome]:
        cfg = self.cfg
        if cfg.shard:
            subs = shard(subs, *cfg.shard)
        cfg.out.mkdir(parents=True, exist_ok=True)
        todo, outcomes = [], []
        for sub in subs:
            done = Result.read(cfg.out / sub.id) if cfg.resume else None
            if done is not None:
                outcomes.append(Outcome(sub.id, done.status, done.score, None, 0.0, "already graded", skipped=True))
            else:
                todo.append(sub)
        if outcomes:
            self.log(f"resuming: {len(outcomes)} submission(s) already graded in {cfg.out}, {len(todo)} to go")
        total, done = len(todo), 0
        workers = max(1, min(cfg.settings.workers, total or 1))
        # a progress bar with the time left (on stderr); one line per finished submission (on stdout)
        with ThreadPoolExecutor(workers) as pool, tqdm(total=total, unit="nb", desc="grading", file=sys.stderr,
                                                         disable=not total, dynamic_ncols=True) as bar:
            futures = {pool.submit(self._grade_one, sub): sub for sub in todo}
            try:
                for fut in as_completed(futures):
                    outcome = fut.result()
                    outcomes.append(outcome)
                    done += 1
                    bar.update(1)
                    with bar.external_write_mode(file=sys.stdout):
                        self.log(self._line(done, total, outcome))
            except KeyboardInterrupt:
                self._terminate_all()
                raise
        return outcomes

    @staticmethod
    def _line(done: int, total: int, o: Outcome) -> str:
        score = f"{o.score:g}/{o.max_score:g}" if o.score is not None and o.max_score else "-"
        return f"[{done}/{total}] {o.id:<40} {o.status:<15} {score:>9} {o.seconds:6.1f}s"

    def _grade_one(self, sub: Submission) -> Outcome:
        cfg = self.cfg
        out_dir = cfg.out / sub.id
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").unlink(missing_ok=True)  # a re-run is not done until it says so
        job = Job(submission=sub.to_json(), out_dir=str(out_dir), settings=cfg.settings.to_json(),
                  execute=cfg.execute.to_json())
        t0 = time.monotonic()
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="qgrader-job-", delete=False) as fh:
            fh.write(job.to_json())
            job_path = fh.name
        limit = cfg.execute.notebook_timeout + 2 * cfg.execute.probe_timeout + cfg.worker_margin
        reason = None
        try:
            proc = subprocess.Popen([sys.executable, "-m", "grader.run.worker", job_path], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True,
                                    env={**os.environ, PARENT_ENV: str(os.getpid())})
            with self._lock:
                self._procs.add(proc)
            try:
                stdout, stderr = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                stdout, stderr = proc.communicate()
                reason = f"the grader's worker ran past {limit:.0f} s and was stopped"
            finally:
                with self._lock:
                    self._procs.discard(proc)
            if reason is None and proc.returncode != 0:
                reason = f"the grader's worker failed (exit {proc.returncode}): {(stderr or '').strip()[-1500:]}"
        finally:
            os.unlink(job_path)
        if reason is None and is_complete(out_dir):
            summary = json.loads(stdout.split("RESULT ", 1)[1]) if "RESULT " in stdout else {}
            return Outcome(sub.id, summary.get("status", "?"), summary.get("score"), summary.get("max_score"),
                           time.monotonic() - t0, summary.get("reason", ""))
        return self._record_failure(sub, out_dir, reason or "the grader's worker ended without a result",
                                    time.monotonic() - t0)

    def _record_failure(self, sub: Submission, out_dir: Path, reason: str, seconds: float) -> Outcome:
        """The worker died: keep whatever it recorded, mark it a grader error, write a result."""
        grade = record_failure(sub, out_dir, reason, seconds, self.cfg.settings)
        return Outcome(sub.id, Status.GRADER_ERROR, grade.score, grade.max_score, seconds, reason)

    def _terminate_all(self) -> None:
        with self._lock:
            for proc in list(self._procs):
                _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def grade_paths(paths: list[Path], out: Path, settings: Settings, resume: bool = False,
                shard_spec: tuple[int, int] | None = None, canvas_assignment: str | None = None, log=print,
                class_outputs: bool = True) -> list[Outcome]:
    """`grade PATH...`: find the submissions, compute the golden once, grade them all, write the class outputs
    (unless class_outputs is False: a Slurm array task, whose summarize job writes them once).

    Raises UsageError when nothing gradable was found."""
    from concurrent.futures import ThreadPoolExecutor

    from grader.intake.discovery import Discovery
    from grader.report.gradebook import write_class_outputs
    from grader.spec.errors import UsageError

    settings.load_rubric()  # fail early on a bad rubric
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:  # a typo, not a student who submitted nothing: nothing is graded or written
        raise UsageError(f"{', '.join(missing)}: no such file or folder (expected notebooks, folders of them, "
                         "zips or a Canvas download)")
    discovery = Discovery()
    try:
        subs = discovery.find(paths)
        for note in discovery.notes:
            log(f"note: {note}")
        if not subs:
            raise UsageError(f"no submissions found in {', '.join(map(str, paths))} (expected .ipynb files, "
                             "folders of them, or zips)")
        log(f"grading {len(subs)} submission(s) with {settings.workers} worker(s); model {settings.model}; "
            f"output in {out}/")
        inputs = [p.resolve() if p.is_dir() else p.resolve().parent for p in paths if p.exists()]
        with ThreadPoolExecutor(1) as pool:  # the sandbox probe (a process) runs while the golden loads
            sandbox_log: list[str] = []
            execute = pool.submit(settings.execute_config, [out.resolve(), *inputs], sandbox_log.append)
            golden = settings.golden_store().get()  # computed once here, before workers start
            log(f"golden ready: {golden.num_layers} layers x {golden.n_tokens} tokens ({golden.model_id})")
            execute_cfg = execute.result()
            for line in sandbox_log:
                log(line)
        out.mkdir(parents=True, exist_ok=True)
        cfg = BatchConfig(out=out, settings=settings, execute=execute_cfg, resume=resume, shard=shard_spec)
        outcomes = Batch(cfg, log=log).run(subs)
    finally:
        discovery.cleanup()
    errors = [o for o in outcomes if o.status == Status.GRADER_ERROR]
    done = f"done: {len(outcomes)} graded ({sum(o.skipped for o in outcomes)} resumed); {len(errors)} grader error(s)."
    if not class_outputs:
        log(f"{done} Class outputs left to `grade summarize {out}`")
        return outcomes
    written = write_class_outputs(out, rubric=settings.rubric,
                                  **({"canvas_assignment": canvas_assignment} if canvas_assignment else {}))
    for warning in written.warnings:
        log(f"warning: {warning}")
    if written.pending:
        log(f"note: {written.pending} manual item(s) await a TA: grade review {out} (or grade manual {out} --export)")
    log(f"{done} Class overview: {written.paths['index']}; Canvas: {written.paths['csv']}")
    return outcomes
