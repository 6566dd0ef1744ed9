"""Grade many submissions: shard, resume, run workers in parallel, never lose a grade, stop cleanly.

Reads the submissions (grader.intake) and, with --resume, the out/<id>/results.json already there.
Writes OUT/grading.json (settings.RunRecord) before the first notebook runs, out/<id>/ per submission
(its worker runs grader.pipeline), and the class outputs (grader.report.gradebook) at the end.

Each submission runs in its own worker process (grader.run.worker). A worker that crashes, hangs or is
killed still leaves a result: the batch writes a `grader_error` result with the reason. Results are
complete when out/<id>/results.json exists (it is written last).

Ctrl-C or SIGTERM (StopSignals): no new submission starts; each running worker gets SIGTERM (it ends its
kernel and removes its working folder), SIGKILL after `stop_grace` seconds; those submissions are
recorded `interrupted` (execution.json, no results.json); the class outputs are written for what
finished, and `grade_paths` raises GradingInterrupted (the CLI prints the command that resumes, exit
130). `--resume` skips exactly the finished results: it grades the interrupted, the not started and
the grader errors.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from grader.execute.config import ExecuteConfig
from grader.execute.records import ExecutionRecord
from grader.intake.submission import Submission
from grader.io import SubmissionDir, write_json
from grader.pipeline import record_failure
from grader.results import Result, is_complete
from grader.run.worker import PARENT_ENV, Job
from grader.settings import RunRecord, Settings, parse_shard
from grader.status import Status

log_line = functools.partial(print, flush=True)  # one line per event, seen at once through a pipe or `tee`


@dataclass
class BatchConfig:
    out: Path = Path("grading")
    settings: Settings = field(default_factory=Settings)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    resume: bool = False
    shard: tuple[int, int] | None = None  # (k, n): the k-th (1-based) of n slices
    worker_margin: float = 600.0  # seconds a worker may take beyond the notebook budget
    stop_grace: float = 3.0  # seconds a stopped worker gets to end its kernel and working folder before SIGKILL
    stop_poll: float = 0.2  # seconds between looks at the stop flag while workers run


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
    parse_shard(f"{k}/{n}")
    ordered = sorted(subs, key=lambda s: s.id)
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


class StopSignals:
    """While entered (on the main thread): SIGINT and SIGTERM set `event` instead of raising, and `received`
    says which came first; the previous handlers are back on exit. Elsewhere than the main thread it does
    nothing (Python delivers signals to the main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, event: threading.Event | None = None):
        self.event = event or threading.Event()
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.received = self.received or signum
        self.event.set()

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "?"


class GradingInterrupted(KeyboardInterrupt):
    """A signal stopped the batch. What finished is written (its class outputs too); `interrupted` ran and
    were stopped, `not_started` never ran. `exit_code` is the shell's 128 + the signal number."""

    def __init__(self, signum: int, outcomes: list[Outcome], not_started: list[str]):
        self.signum, self.outcomes, self.not_started = signum, outcomes, not_started
        self.interrupted = [o.id for o in outcomes if o.status == Status.INTERRUPTED]
        self.graded = [o for o in outcomes if o.status != Status.INTERRUPTED]
        super().__init__(f"stopped by {signal.Signals(signum).name}: {len(self.graded)} graded, "
                         f"{len(self.interrupted)} interrupted while running, {len(not_started)} not started")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Batch:
    def __init__(self, cfg: BatchConfig, log=log_line):
        self.cfg = cfg
        self.log = log
        self._lock = threading.Lock()  # guards _procs, and starting a worker against a stop
        self._procs: set[subprocess.Popen] = set()
        self._signals = StopSignals()
        self.stopped_by: int | None = None  # the signal that stopped the run, if one did
        self.not_started: list[str] = []  # ids that never ran because of the stop

    def run(self, subs: list[Submission]) -> list[Outcome]:
        cfg = self.cfg
        if cfg.shard:
            subs = shard(subs, *cfg.shard)
        cfg.out.mkdir(parents=True, exist_ok=True)
        todo, outcomes = self._to_grade(subs)
        total = len(todo)
        workers = max(1, min(cfg.settings.workers, total or 1))
        # a progress bar with the time left (on stderr); one line per finished submission (on stdout)
        with self._signals, ThreadPoolExecutor(workers) as pool, \
                tqdm(total=total, unit="nb", desc="grading", file=sys.stderr, disable=not total,
                     dynamic_ncols=True) as bar:
            futures = {pool.submit(self._grade_one, sub): sub for sub in todo}
            pending = set(futures)
            while pending and not self._signals.event.is_set():
                finished, pending = wait(pending, timeout=cfg.stop_poll, return_when=FIRST_COMPLETED)
                for fut in finished:
                    self._report(fut, futures[fut], outcomes, bar)
            if pending:  # stopped by a signal: nothing new starts, the running workers are ended
                self.stopped_by = self._signals.received
                pool.shutdown(wait=False, cancel_futures=True)
                # a future cancelled by shutdown() never notifies wait(): wait on the running ones only
                self._stop_workers({fut for fut in pending if not fut.cancelled()})
                for fut in pending:
                    self._report(fut, futures[fut], outcomes, bar)
        return outcomes

    def _to_grade(self, subs: list[Submission]) -> tuple[list[Submission], list[Outcome]]:
        """(what to grade, the outcomes of what --resume keeps): a result is kept unless its status is not
        final (a grader error); an interrupted submission has no result, so it is graded."""
        cfg = self.cfg
        todo, kept, retried = [], [], 0
        for sub in subs:
            done = Result.read(cfg.out / sub.id) if cfg.resume else None
            status = Status.parse(done.status) if done is not None else None
            if done is not None and (status is None or status.done):  # a status this version lacks: kept
                kept.append(Outcome(sub.id, done.status, done.score, None, 0.0, "already graded", skipped=True))
            else:
                retried += done is not None
                todo.append(sub)
        if kept or retried:
            self.log(f"resuming: {len(kept)} submission(s) already graded in {cfg.out}, {len(todo)} to go"
                     + (f" ({retried} grader error(s) graded again)" if retried else ""))
        return todo, kept

    def _report(self, fut: Future, sub: Submission, outcomes: list[Outcome], bar) -> None:
        outcome = None if fut.cancelled() else fut.result()
        if outcome is None:  # never started: the batch was stopped first
            self.not_started.append(sub.id)
            return
        outcomes.append(outcome)
        bar.update(1)
        with bar.external_write_mode(file=sys.stdout):
            self.log(self._line(bar.n, bar.total, outcome))

    @staticmethod
    def _line(done: int, total: int, o: Outcome) -> str:
        score = f"{o.score:g}/{o.max_score:g}" if o.score is not None and o.max_score else "-"
        return f"[{done}/{total}] {o.id:<40} {o.status:<15} {score:>9} {o.seconds:6.1f}s"

    def _grade_one(self, sub: Submission) -> Outcome | None:
        """Run one worker; None when the batch was stopped before this submission started."""
        cfg = self.cfg
        if self._signals.event.is_set():
            return None
        out_dir = cfg.out / sub.id
        out_dir.mkdir(parents=True, exist_ok=True)
        SubmissionDir(out_dir).results.unlink(missing_ok=True)  # a re-run is not done until it says so
        job = Job(submission=sub.to_json(), out_dir=str(out_dir), settings=cfg.settings.to_json(),
                  execute=cfg.execute.to_json())
        t0 = time.monotonic()
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="qgrader-job-", delete=False) as fh:
            fh.write(job.to_json())
            job_path = fh.name
        limit = cfg.execute.notebook_timeout + 2 * cfg.execute.probe_timeout + cfg.worker_margin
        reason, stdout = None, ""
        try:
            with self._lock:  # a stop either sees this worker in _procs or is seen here
                if self._signals.event.is_set():
                    return self._record_interrupted(sub, out_dir, time.monotonic() - t0)
                proc = subprocess.Popen([sys.executable, "-m", "grader.run.worker", job_path],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True, env={**os.environ, PARENT_ENV: str(os.getpid())})
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
        stopped = self._signals.event.is_set()
        if is_complete(out_dir) and (reason is None or stopped):  # finished, even if just before a stop
            return self._finished(sub, out_dir, stdout, time.monotonic() - t0)
        if stopped:
            return self._record_interrupted(sub, out_dir, time.monotonic() - t0)
        return self._record_failure(sub, out_dir, reason or "the grader's worker ended without a result",
                                    time.monotonic() - t0)

    @staticmethod
    def _finished(sub: Submission, out_dir: Path, stdout: str, seconds: float) -> Outcome:
        if "RESULT " in stdout:
            summary = json.loads(stdout.split("RESULT ", 1)[1])
        else:  # stopped after results.json was written, before the worker said so
            r = Result.read(out_dir)
            summary = {"status": r.status, "score": r.score, "max_score": r.max_score, "reason": r.summary.reason}
        return Outcome(sub.id, summary.get("status", "?"), summary.get("score"), summary.get("max_score"),
                       seconds, summary.get("reason", ""))

    def _record_failure(self, sub: Submission, out_dir: Path, reason: str, seconds: float) -> Outcome:
        """The worker died: keep whatever it recorded, mark it a grader error, write a result."""
        grade = record_failure(sub, out_dir, reason, seconds, self.cfg.settings)
        return Outcome(sub.id, Status.GRADER_ERROR, grade.score, grade.max_score, seconds, reason)

    def _record_interrupted(self, sub: Submission, out_dir: Path, seconds: float) -> Outcome:
        """Stopped while running: execution.json says so, and no results.json, so it is not done."""
        reason = (f"grading was interrupted ({self._signals.name}) before this submission finished; "
                  "`grade ... --resume` grades it")
        write_json(SubmissionDir(out_dir).execution,
                   ExecutionRecord(sub.id, Status.INTERRUPTED, reason, seconds=round(seconds, 2)).to_json())
        return Outcome(sub.id, Status.INTERRUPTED, None, None, seconds, reason)

    def _stop_workers(self, running: set[Future]) -> None:
        """SIGTERM every worker (it ends its kernel and removes its working folder), SIGKILL what is left
        after stop_grace seconds; returns once every thread has returned."""
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc, signal.SIGTERM)
        _, left = wait(running, timeout=self.cfg.stop_grace)
        if left:
            with self._lock:
                for proc in list(self._procs):
                    _kill_group(proc)
            wait(left)


def _kill_group(proc: subprocess.Popen, signum: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def select_only(subs: list[Submission], only: list[str], out: Path) -> list[Submission]:
    """The submissions named by --only; UsageError (nothing written) for an id not found in the paths."""
    from grader.errors import UsageError

    ids = {s.id for s in subs}
    unknown = [sid for sid in only if sid not in ids]
    if unknown:
        raise UsageError(f"--only: no submission {', '.join(map(repr, unknown))} among those found (their ids are "
                         f"the folder names in {out}/, e.g. {sorted(ids)[0]!r}); nothing was run or written")
    return [s for s in subs if s.id in set(only)]


def grade_paths(paths: list[Path], out: Path, settings: Settings, resume: bool = False,
                shard_spec: tuple[int, int] | None = None, canvas_assignment: str | None = None,
                log=log_line, class_outputs: bool = True, only: list[str] | None = None) -> list[Outcome]:
    """`grade PATH...`: check the settings, find the submissions, compute the golden once, record the run
    (OUT/grading.json), grade them all, write the class outputs
    (unless class_outputs is False: a Slurm array task, whose summarize job writes them once).
    `only`: grade just these submission ids (`grade PATHS --only ID...`), inside an existing --out whose
    other submissions stay untouched; the class outputs are then rebuilt from every result in --out.

    Raises UsageError (before anything is written) on a bad setting or when nothing gradable was found,
    and GradingInterrupted, after writing the class outputs of what finished, when a signal stopped it."""
    from concurrent.futures import ThreadPoolExecutor

    from grader.intake.discovery import Discovery
    from grader.report.gradebook import default_column, write_class_outputs
    from grader.errors import UsageError

    settings.validate()  # every value, the rubric's [late] table included, before any work
    from grader.run.footprint import plan_settings, release_memory

    settings = plan_settings(settings, log)  # a real model: --workers capped to the memory there is
    canvas_assignment = canvas_assignment or default_column(settings.assignment)
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
        if only:
            subs = select_only(subs, only, out)
        log(f"grading {len(subs)} submission(s) with {settings.workers} worker(s); model {settings.model}; "
            f"output in {out}/")
        if settings.cpu_note():
            log(f"note: {settings.cpu_note()}")
        inputs = [p.resolve() if p.is_dir() else p.resolve().parent for p in paths if p.exists()]
        with ThreadPoolExecutor(1) as pool:  # the sandbox probe (a process) runs while the golden loads
            sandbox_log: list[str] = []
            execute = pool.submit(settings.execute_config, [out.resolve(), *inputs], sandbox_log.append)
            golden = settings.golden_store().get()  # computed once here, before workers start
            log(f"golden ready: {golden.num_layers} layers x {golden.n_tokens} tokens ({golden.model_id})")
            del golden  # workers read it from the cache: nothing of it stays here while kernels run
            release_memory()
            execute_cfg = execute.result()
            for line in sandbox_log:
                log(line)
        out.mkdir(parents=True, exist_ok=True)
        RunRecord.of(settings, canvas_assignment).write(out)  # before grading: later verbs reuse it
        cfg = BatchConfig(out=out, settings=settings, execute=execute_cfg, resume=resume, shard=shard_spec)
        batch = Batch(cfg, log=log)
        outcomes = batch.run(subs)
    finally:
        discovery.cleanup()
    errors = [o for o in outcomes if o.status == Status.GRADER_ERROR]
    done = f"done: {len(outcomes)} graded ({sum(o.skipped for o in outcomes)} resumed); {len(errors)} grader error(s)."
    if not class_outputs:
        if batch.stopped_by:
            raise GradingInterrupted(batch.stopped_by, outcomes, batch.not_started)
        log(f"{done} Class outputs left to `grade summarize {out}`")
        return outcomes
    written = write_class_outputs(out, canvas_assignment=canvas_assignment, rubric=settings.rubric)
    for warning in written.warnings:
        log(f"warning: {warning}")
    for note in written.notes:
        log(f"note: {note}")
    if written.pending:
        log(f"note: {written.pending} manual item(s) await a TA: grade review {out} (or grade manual {out} --export)")
    where = f"Class overview: {written.paths['index']}; Canvas: {written.paths['csv']}"
    if batch.stopped_by:
        stop = GradingInterrupted(batch.stopped_by, outcomes, batch.not_started)
        log(f"{stop}; the class outputs hold the {len(stop.graded)} graded. {where}")
        raise stop
    log(f"{done} {where}")
    return outcomes
