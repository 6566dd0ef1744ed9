"""`grade slurm`: a class graded as a Slurm job array, then summarized once.

Reads: the submission paths (found and counted as `grade` finds them), the scheduler options and the
grading options of the `grade` verb (grader/cli.py defines them; this module passes them through).
Writes, atomically, in OUT/slurm/ (an instructor reads them before submitting):
  grade.sbatch      an array of N tasks; task K runs `grade PATHS --out OUT --shard K/N --resume
                    --no-class-outputs ...` into the shared OUT, its log in logs/grade-<array job>_<K>.out
  summarize.sbatch  `grade summarize OUT`: grades.csv, grades_detail.csv and index.html, written once,
                    after the whole array (submitted with --dependency=afterany:<array job>, so it also
                    runs when some tasks failed or timed out); its log in logs/summarize-<job>.out
With --submit both are submitted (`sbatch --parsable`) and the job ids, how to watch them and how to
rerun one task are printed. `--only-task K` resubmits only task K of the array (and summarize again):
the other tasks' results are untouched, and --resume skips what task K had already finished.

Array tasks never write the class outputs: concurrent tasks would rebuild index.html and similar/
from a half-graded folder at the same time (similar/ is deleted and rewritten), so only the summarize
job writes them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from grader.io import write_atomic
from grader.errors import UsageError

JOB_NAME = "qgrader"
# characters a value cannot carry in an `#SBATCH` line (sbatch reads double quotes only; % is a
# filename pattern)
UNSAFE_DIRECTIVE = re.compile(r'["%\\\n\r]')


class SlurmError(UsageError, RuntimeError):
    """sbatch is missing or refused a script: what was run and what it said."""


@dataclass
class SlurmOptions:
    partition: str | None = None  # --partition; None: the cluster's default partition
    account: str | None = None  # --account (required on many clusters, e.g. def-yourpi on the Alliance)
    time: str | None = None  # --time per task, e.g. 02:00:00; None: the partition's default
    cpus_per_task: int | None = None  # --cpus-per-task; None: the cluster's default (1)
    mem: str | None = None  # --mem per task, e.g. 32G; None: the partition's default
    gres: str | None = None  # --gres, e.g. gpu:1 for the real model
    sbatch_lines: list[str] = field(default_factory=list)  # extra '#SBATCH ...' lines, in both scripts
    activate: list[str] = field(default_factory=list)  # shell lines that set up the environment
    venv: Path | None = None  # a virtual environment to `source DIR/bin/activate` (after `activate`)


@dataclass
class Submitted:
    array: str  # the array job's id
    summarize: str  # the summarize job's id
    tasks: str  # the --array spec submitted, e.g. 1-10 or 3


@dataclass
class SlurmArray:
    """The two scripts of one class: where they go, what they run, how they are submitted."""

    paths: list[Path]  # the submissions, as given to `grade`
    out: Path  # the shared output folder
    shards: int  # N: array tasks 1..N, task K grades --shard K/N
    grading: list[str]  # the grade verb's options for every task (argv words)
    summarizing: list[str]  # the summarize verb's options (argv words)
    options: SlurmOptions = field(default_factory=SlurmOptions)
    python: str = sys.executable  # runs `-m grader.cli` when no environment is activated

    def __post_init__(self):
        self.paths = [Path(p).resolve() for p in self.paths]
        self.out = Path(self.out).resolve()
        if self.shards < 1:
            raise UsageError(f"--shards expects a number of array tasks of at least 1, got {self.shards}")
        for line in self.options.sbatch_lines:
            if not line.startswith("#SBATCH ") or "\n" in line:
                raise UsageError(f"--sbatch-line expects one line starting with '#SBATCH ', got {line!r}")
        _directive(str(self.out))  # the log paths are written into #SBATCH lines

    @property
    def folder(self) -> Path:
        return self.out / "slurm"

    @property
    def grade_script(self) -> Path:
        return self.folder / "grade.sbatch"

    @property
    def summarize_script(self) -> Path:
        return self.folder / "summarize.sbatch"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    def task_spec(self, only: list[int] | None = None) -> str:
        """The --array value: every task (1-N), or the given ones (checked against N)."""
        if not only:
            return f"1-{self.shards}"
        bad = [k for k in only if not 1 <= k <= self.shards]
        if bad:
            raise UsageError(f"--only-task expects task numbers 1..{self.shards} (--shards {self.shards}), got "
                             f"{', '.join(map(str, bad))}")
        return ",".join(str(k) for k in sorted(set(only)))

    def write(self, count: int) -> None:
        """Write both scripts (and the log folder Slurm writes into); count: the submissions found."""
        self.logs.mkdir(parents=True, exist_ok=True)
        stamp = f"# Written by `grade slurm` on {datetime.now():%Y-%m-%d %H:%M}: {count} submission(s) in {self.shards} task(s)."
        write_atomic(self.grade_script, self._script([
            stamp,
            f"# Task K grades the K-th of {self.shards} slices (--shard K/{self.shards}) into the shared output folder,",
            "# skipping what is already graded there (--resume); the class outputs are left to summarize.sbatch.",
            f"# Submit all:   {self.by_hand()}",
            f"# Rerun task K: {self.by_hand('K')}",
        ], [
            f"--job-name={JOB_NAME}",
            f"--array=1-{self.shards}",
            f"--output={_directive(str(self.logs), '/grade-%A_%a.out')}",
            *self._directives(resources=True),
        ], [
            f'echo "grade: task ${{SLURM_ARRAY_TASK_ID}} of {self.shards} (array job ${{SLURM_ARRAY_JOB_ID}}) on $(hostname)"',
            self._command([*map(str, self.paths), "--out", str(self.out)],
                          f'--shard "${{SLURM_ARRAY_TASK_ID}}/{self.shards}" --resume --no-class-outputs', self.grading),
        ]))
        write_atomic(self.summarize_script, self._script([
            stamp,
            "# grades.csv, grades_detail.csv and index.html from every task's results, once the array has ended",
            "# (submitted with --dependency=afterany:<array job id>: it also runs when some tasks failed).",
        ], [
            f"--job-name={JOB_NAME}-summarize",
            f"--output={_directive(str(self.logs), '/summarize-%j.out')}",
            *self._directives(resources=False),
        ], [self._command(["summarize", str(self.out)], "", self.summarizing)]))

    def by_hand(self, tasks: str | None = None) -> str:
        """The shell line that submits the array (or the given tasks) and then summarize, as --submit does."""
        array = f" --array={tasks}" if tasks else ""
        return (f"jid=$(sbatch --parsable{array} {shlex.quote(str(self.grade_script))}) && "
                f"sbatch --dependency=afterany:${{jid%%;*}} {shlex.quote(str(self.summarize_script))}")

    def submit(self, only: list[int] | None = None) -> Submitted:
        """sbatch the array (all tasks or `only`), then summarize after it; SlurmError if sbatch fails."""
        tasks = self.task_spec(only)
        array = _sbatch([f"--array={tasks}", str(self.grade_script)])
        try:
            summary = _sbatch([f"--dependency=afterany:{array}", str(self.summarize_script)])
        except SlurmError as exc:
            raise SlurmError(f"{exc}\nThe array was submitted (job {array}); submit the summary by hand once it is "
                             f"fixed: sbatch --dependency=afterany:{array} {shlex.quote(str(self.summarize_script))}") from None
        return Submitted(array, summary, tasks)

    def instructions(self, job: Submitted) -> str:
        """What to do next: watch, read the logs, rerun a task, find the grades."""
        logs = shlex.quote(str(self.logs))
        return "\n".join([
            f"submitted: array job {job.array} (task(s) {job.tasks} of {self.shards}), then job {job.summarize} "
            "(grade summarize, once every task has ended, also when some failed)",
            f"watch:     squeue -j {job.array},{job.summarize}",
            f"           sacct -j {job.array},{job.summarize} -X --format=JobID,State,Elapsed,ExitCode"
            "   (failed or timed-out tasks: JobID <array>_<task>)",
            f"logs:      {logs}/grade-{job.array}_<task>.out, {logs}/summarize-{job.summarize}.out",
            f"rerun task K (failed, timed out or cancelled; make sure it is not still running): add --only-task K "
            "--submit to this command, or by hand:",
            f"           {self.by_hand('K')}",
            f"grades:    {shlex.quote(str(self.out / 'grades.csv'))} and {shlex.quote(str(self.out / 'index.html'))} "
            f"once job {job.summarize} has ended",
        ])

    def _directives(self, resources: bool) -> list[str]:
        o = self.options
        values = {"partition": o.partition, "account": o.account, "time": o.time}
        if resources:  # the grading tasks only; summarize needs one CPU and little memory
            values |= {"cpus-per-task": o.cpus_per_task, "mem": o.mem, "gres": o.gres}
        return [f"--{name}={_directive(str(value))}" for name, value in values.items() if value is not None]

    def _script(self, comments: list[str], directives: list[str], body: list[str]) -> str:
        setup = [*self.options.activate]
        if self.options.venv:
            setup.append(f"source {shlex.quote(str(Path(self.options.venv).expanduser().resolve() / 'bin' / 'activate'))}")
        return "\n".join([
            "#!/bin/bash",
            *comments,
            *(f"#SBATCH {d}" for d in directives),
            *self.options.sbatch_lines,
            "",
            "set -e",
            *setup,
            *body,
        ]) + "\n"

    def _command(self, words: list[str], raw: str, options: list[str]) -> str:
        """`exec grade WORDS RAW OPTIONS`, quoted, one option per line; RAW is shell text (the task's shard)."""
        activated = self.options.activate or self.options.venv
        grade = "grade" if activated else f"{shlex.quote(self.python)} -m grader.cli"
        lines = [f"exec {grade} {shlex.join(words)}", *([raw] if raw else [])]
        i = 0
        while i < len(options):  # a flag with its value on one line
            takes_value = i + 1 < len(options) and not options[i + 1].startswith("--")
            lines.append(shlex.join(options[i:i + 1 + takes_value]))
            i += 1 + takes_value
        return " \\\n    ".join(lines)


def _directive(value: str, pattern: str = "") -> str:
    """A value for an `#SBATCH --opt=VALUE` line: as is, or in double quotes when it holds spaces;
    `pattern` is appended unchecked (Slurm's %A, %a, %j)."""
    if UNSAFE_DIRECTIVE.search(value):
        raise UsageError(f"{value!r} cannot be written into an #SBATCH line (expected no \", %, \\ or line break); "
                         "choose a plain --out folder or option value")
    value += pattern
    return f'"{value}"' if re.search(r"\s|'", value) else value


def _sbatch(args: list[str]) -> str:
    """Run `sbatch --parsable ARGS`; the job id it prints."""
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch was not found on PATH: run `grade slurm --submit` on the cluster's login node "
                         "(or submit the written scripts there by hand)")
    cmd = ["sbatch", "--parsable", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SlurmError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"


def grading_argv(args, dests: list[str]) -> list[str]:
    """The grade verb's options given in `args` as argv words (absolute paths; flags without False/None)."""
    argv = []
    for dest in dests:
        value = getattr(args, dest, None)
        if value is None or value is False:
            continue
        flag = "--" + dest.replace("_", "-")
        if isinstance(value, Path):
            value = value.resolve()
        elif isinstance(value, float):
            value = f"{value:g}"  # 300, not 300.0
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def array_from_args(args, dests: list[str]) -> SlurmArray:
    """The slurm verb's arguments -> SlurmArray; dests: the grade verb's grading options, passed to every task."""
    from grader.settings import Settings

    Settings(rubric=args.rubric).load_rubric()  # a bad rubric fails here, not in every task
    if args.workers is None:  # a task's default: the CPUs it was given, not the login node's
        args.workers = args.cpus_per_task or 1
    options = SlurmOptions(partition=args.partition, account=args.account, time=args.time,
                           cpus_per_task=args.cpus_per_task, mem=args.mem, gres=args.gres,
                           sbatch_lines=args.sbatch_line, activate=args.activate, venv=args.venv)
    return SlurmArray(args.paths, args.out, args.shards, grading_argv(args, dests),
                      grading_argv(args, ["canvas_assignment", "rubric"]), options)


def count_submissions(paths: list[Path]) -> int:
    """How many submissions `grade` will find in paths; UsageError when a path is missing or none is found."""
    from grader.intake.discovery import Discovery

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"{', '.join(missing)}: no such file or folder (expected notebooks, folders of them, "
                         "zips or a Canvas download)")
    discovery = Discovery()
    try:
        found = len(discovery.find(paths))
    finally:
        discovery.cleanup()
    if not found:
        raise UsageError(f"no submissions found in {', '.join(map(str, paths))} (expected .ipynb files, folders "
                         "of them, or zips)")
    return found


def run_slurm(array: SlurmArray, submit: bool, only: list[int] | None = None, log=print) -> int:
    """`grade slurm`: write the scripts, and submit them when asked; the exit status."""
    count = count_submissions(array.paths)
    if array.shards > count:
        raise UsageError(f"--shards {array.shards} asks for more array tasks than there are submissions ({count}): "
                         f"give --shards {count} or fewer")
    tasks = array.task_spec(only)
    array.write(count)
    log(f"wrote {array.grade_script} ({array.shards} task(s) over {count} submission(s)) and {array.summarize_script}")
    if not submit:
        log(f"read them, then submit {'task(s) ' + tasks if only else 'both'} (or run this again with --submit):\n"
            f"    {array.by_hand(tasks if only else None)}")
        return 0
    try:
        job = array.submit(only)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(array.instructions(job))
    return 0
