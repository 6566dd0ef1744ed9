"""`grade rejudge OUT [--rubric R] [--only ID...]`: judge again what a batch executed, without running a notebook.

The execution of a submission left out/<id>/execution.json, extracted.npz, executed.ipynb, files/ and
submitted/; judging them is grader.pipeline.conclude, in this process, against the golden of the model
the run recorded (OUT/grading.json, settings.RunRecord). So after a rubric or tolerance change only the
judging is repeated: comparison.json, submission.json, report.html and, last, results.json (the same
writer as a batch) per submission, then grades.csv, grades_detail.csv and index.html. manual.json (the
TAs' points) is never touched. With nothing changed, every results.json is byte-identical to the one the
batch wrote apart from `execution_time` (execution seconds + judging seconds).

The run's settings are reused (model, device, rubric, report, Canvas column) unless --rubric or
--canvas-assignment override them; an overriding rubric is recorded in grading.json, so a later
`grade summarize` or `grade --resume` uses it too.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from grader.execute.records import read_execution
from grader.intake.submission import SubmissionInfo
from grader.io import SubmissionDir, read_json
from grader.results import is_complete, load_results
from grader.settings import RunRecord, Settings, rubric_problems
from grader.status import Status

log_line = functools.partial(print, flush=True)


def rejudgeable(out_dir: Path) -> bool:
    """A finished submission folder whose execution record is there (an interrupted one is not finished)."""
    return is_complete(out_dir) and SubmissionDir(out_dir).execution.is_file() and SubmissionDir(out_dir).submission.is_file()


def stored_carry(out_dir: Path, settings: Settings):
    """The carried-forward step for conclude: the run the batch made in out_dir/carry is judged again, none is made."""
    if not settings.carry_forward:
        return None
    from grader.judge.carry import carry_forward

    def carry(judgement, store, rubric):
        return carry_forward(judgement, None, out_dir, None, store, rubric, stored=True)
    return carry


MIN_PER_WORKER = 4  # submissions a worker process judges at least (its start-up and golden load pay off)

_worker_store = None  # a worker process's golden store, loaded once by _start_worker


def _start_worker(settings: Settings) -> None:
    global _worker_store
    _worker_store = settings.golden_store()
    _worker_store.get()


def judge_one(out_dir: Path, settings: Settings, checks: dict, store=None) -> tuple[str, str, str, float, float]:
    """Judge one stored execution again (in this process or a worker's): (id, execution status, status, score,
    max score)."""
    from grader.pipeline import conclude

    sid = out_dir.name
    info = SubmissionInfo.from_json(read_json(SubmissionDir(out_dir).submission), sid)
    status = read_execution(SubmissionDir(out_dir).execution).status
    grade = conclude(info, out_dir, settings, store or _worker_store, checks, stored_carry(out_dir, settings))
    return sid, str(status), str(grade.status), grade.score, grade.max_score


def judged(dirs: list[Path], settings: Settings, checks: dict, store, workers: int):
    """judge_one of every folder, in `workers` processes (this one when 1); yields as each finishes."""
    if workers <= 1:
        for out_dir in dirs:
            yield judge_one(out_dir, settings, checks, store)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter, not a fork of this one (torch may have started threads here)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(settings,)) as pool:
        for future in as_completed([pool.submit(judge_one, d, settings, checks) for d in dirs]):
            yield future.result()


def rejudge(out: Path, rubric: Path | None = None, only: list[str] | None = None,
            canvas_assignment: str | None = None, log=log_line, workers: int | None = None) -> list[str]:
    """Judge again every finished submission in OUT (or those in `only`), write the class outputs; returns the
    ids re-judged. UsageError (nothing written) for a folder that is not a graded batch, an unknown id in
    `only`, or a bad rubric. `workers`: judging processes (default: the batch's --workers, with at least
    MIN_PER_WORKER submissions each)."""
    from grader.report.gradebook import DEFAULT_ASSIGNMENT, write_class_outputs
    from grader.errors import UsageError

    out = Path(out)
    record = RunRecord.read(out) if out.is_dir() else None
    dirs = sorted(p.parent for p in out.glob("*/results.json")) if out.is_dir() else []
    if not dirs:
        raise UsageError(f"{out} is not a graded output folder (expected <id>/results.json files written by `grade`)")
    settings = Settings.from_json(record.settings) if record else Settings()
    if rubric is not None:
        settings.rubric = Path(rubric).resolve()
    problems = rubric_problems(settings.rubric)
    if problems:
        raise UsageError("; ".join(problems) + " (nothing was written)")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers (judging processes) must be a whole number >= 1, found {workers} (nothing was written)")
    known = {d.name: d for d in dirs if rejudgeable(d)}
    if only:
        unknown = [sid for sid in only if sid not in known]
        if unknown:
            raise UsageError(f"--only: no finished submission {', '.join(map(repr, unknown))} in {out} "
                             f"(the ids are its folder names, e.g. {next(iter(known), '?')!r}); nothing was written")
    ids = [sid for sid in known if not only or sid in only]
    canvas_assignment = canvas_assignment or (record.canvas_assignment if record else None) or DEFAULT_ASSIGNMENT
    t0 = time.monotonic()
    store = settings.golden_store()
    golden = store.get()
    log(f"rejudging {len(ids)} submission(s) in {out}/ against the golden of {golden.model_id} "
        f"(rubric {settings.rubric or 'default'}); no notebook runs")
    checks = settings.load_rubric()
    if workers is None:
        workers = min(settings.workers, len(ids) // MIN_PER_WORKER)
    for n, (sid, ran, status, score, max_score) in enumerate(
            judged([known[sid] for sid in ids], settings, checks, store, max(1, workers)), 1):
        log(f"[{n}/{len(ids)}] {sid:<40} {status:<15} {score:g}/{max_score:g}"
            + ("" if ran == status else f" (execution status {ran})"))
    if record is None or rubric is not None or canvas_assignment != record.canvas_assignment:
        RunRecord.of(settings, canvas_assignment).write(out)  # later verbs use what this rejudge applied
    written = write_class_outputs(out, canvas_assignment=canvas_assignment, rubric=settings.rubric)
    for warning in written.warnings:
        log(f"warning: {warning}")
    for note in written.notes:
        log(f"note: {note}")
    log(f"done: {len(ids)} re-judged in {time.monotonic() - t0:.1f} s; class outputs: {written.paths['csv']}, "
        f"{written.paths['detail']}, {written.paths['index']}")
    return ids


def rubric_changes(out: Path, rubric: Path | None) -> list[str]:
    """How the points of `rubric` differ from those OUT's results were judged with ("p3.hook_site: 10 -> 12"),
    one line per check that differs; empty when they agree. `grade summarize` only totals results, so it
    refuses a rubric that would change them and names `grade rejudge`."""
    from grader.judge.rubric.config import load_rubric
    from grader.judge.rubric.runner import declared_checks

    checks, declared = load_rubric(rubric), declared_checks()
    judged: dict[str, float | None] = {}  # check id -> points in the results (None: absent, i.e. disabled)
    for result in load_results(out):
        if result.status != Status.GRADER_ERROR:
            for c in result.checks:
                judged.setdefault(c.id, c.max_points)
    changes = []
    for cid, (_, default, _) in declared.items():
        entry = checks.get(cid, {})
        wanted = None if entry.get("enabled", True) is False else float(entry.get("points", default))
        had = judged.get(cid)
        if judged and wanted != had:
            shown = lambda v: "disabled" if v is None else f"{v:g}"  # noqa: E731
            changes.append(f"{cid}: {shown(had)} -> {shown(wanted)}")
    return changes
