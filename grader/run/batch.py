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

from grader.execute.executor import ExecuteConfig
from grader.execute.records import ExecutionRecord, write_json
from grader.intake.discovery import Submission
from grader.run.worker import PARENT_ENV, Job, execute_config_to_dict, submission_summary, submission_to_dict


@dataclass
class BatchConfig:
    out: Path = Path("grading")
    workers: int = 1
    model: str = "tiny"
    device: str = "cpu"
    rubric: Path | None = None
    golden_cache: Path | None = None
    resume: bool = False
    shard: tuple[int, int] | None = None  # (k, n): the k-th (1-based) of n slices
    report: bool = True
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
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


def shard(subs: list[Submission], k: int, n: int) -> list[Submission]:
    """The k-th (1-based) of n deterministic slices of the submissions, by id."""
    if not (1 <= k <= n):
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {k}/{n}")
    ordered = sorted(subs, key=lambda s: s.id)
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


def is_complete(out_dir: Path) -> bool:
    try:
        data = json.loads((out_dir / "results.json").read_text())
        return "score" in data and "tests" in data
    except (OSError, ValueError):
        return False


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
            if cfg.resume and is_complete(cfg.out / sub.id):
                data = json.loads((cfg.out / sub.id / "results.json").read_text())
                outcomes.append(Outcome(sub.id, data["extra_data"].get("status", "?"), data["score"],
                                        None, 0.0, "already graded", skipped=True))
            else:
                todo.append(sub)
        if outcomes:
            self.log(f"resuming: {len(outcomes)} submission(s) already graded in {cfg.out}, {len(todo)} to go")
        total, done = len(todo), 0
        workers = max(1, min(cfg.workers, total or 1))
        with ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(self._grade_one, sub): sub for sub in todo}
            try:
                for fut in as_completed(futures):
                    outcome = fut.result()
                    outcomes.append(outcome)
                    done += 1
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
        job = Job(submission=submission_to_dict(sub), out_dir=str(out_dir),
                  execute=execute_config_to_dict(cfg.execute), model=cfg.model, device=cfg.device,
                  rubric=str(cfg.rubric) if cfg.rubric else None,
                  golden_cache=str(cfg.golden_cache) if cfg.golden_cache else None, report=cfg.report)
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
        from grader.judge.golden import GoldenStore
        from grader.judge.verdicts import judge
        from grader.rubric.config import load_rubric

        write_json(out_dir / "execution.json",
                   ExecutionRecord(sub.id, "grader_error", reason, seconds=round(seconds, 2)).to_json())
        store = GoldenStore(self.cfg.model, self.cfg.golden_cache, device=self.cfg.device)
        grade = judge(submission_summary(sub), out_dir, store, load_rubric(self.cfg.rubric), report=self.cfg.report)
        return Outcome(sub.id, "grader_error", grade.score, grade.max_score, seconds, reason)

    def _terminate_all(self) -> None:
        with self._lock:
            for proc in list(self._procs):
                _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
