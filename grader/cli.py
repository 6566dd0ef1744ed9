"""The `grade` command: arguments -> Settings -> a verb. No logic here.

    grade PATH... [options]              grade submissions (notebooks, folders, zips, a Canvas download)
    grade check NOTEBOOK                 a student's self-check on a laptop CPU (the miniature)
    grade summarize DIR                  rebuild grades.csv, grades_detail.csv and index.html
    grade rejudge DIR [--rubric R]       judge the stored executions again (no notebook runs), rewrite results
    grade manual DIR --export F.csv      the TA's manual checks as a CSV to fill in (--import F.csv reads it back)
    grade review DIR [--port N]          a local web page where a TA grades the manual checks
    grade feedback DIR --out FOLDER      one feedback page (and zip) per student, without the reference's answers
    grade student-kit KIT_DIR            the self-check kit for students: a wheel (no solution inside) and a README
    grade gradescope-bundle FILE.zip     write Gradescope's autograder zip
    grade gradescope-run                 grade inside Gradescope's container
    grade slurm PATH... --shards N       a Slurm job array that grades in N shards, then summarizes (--submit)
    grade new-assignment DIR --model ID  a new assignment pack for another model, copied from a pack, self-tested
    grade --version                      the grader's version
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from grader.spec.pack import DEFAULT_LIMITS, DEFAULT_PACK, shipped_packs
from grader.settings import RunRecord, Settings, folder_arg, grader_version, port_arg, rubric_problems, shard_arg

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GRADER_ERRORS = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C (SIGTERM: 143)
# The flags of earlier versions, each now a verb: still accepted, with one deprecation line.
DEPRECATED_FLAGS = {"--self-check": "check", "--summarize": "summarize", "--gradescope": "gradescope-run",
                    "--make-gradescope-bundle": "gradescope-bundle"}


def _run_options(p: argparse.ArgumentParser, out_default: str | None) -> None:
    """The options of every verb that executes notebooks. Settings.validate checks their values."""
    p.add_argument("--out", type=folder_arg, default=out_default,
                   help=f"output folder (default: {out_default or 'a temporary folder'})")
    p.add_argument("--assignment", default=None, metavar="PACK", help="the assignment pack: a shipped pack's name "
                   f"({', '.join(shipped_packs())}) or a folder holding assignment.toml (default: {DEFAULT_PACK}; "
                   "--resume and later verbs: the one recorded in --out)")
    p.add_argument("--model", default="tiny", help="'tiny' (the pack's miniature, default), the pack's model id "
                   "(its real weights: from the pack's offline package when it ships them, else your Hugging Face "
                   "cache), another hub id, or a local folder")
    p.add_argument("--device", default="cpu", help="where the grader computes goldens: cpu (default) or cuda")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="submissions graded at once, >= 1 (default: the CPUs; more is allowed, with a note)")
    p.add_argument("--cell-timeout", type=float, default=None,
                   help=f"seconds per cell (default: the pack's [limits], {DEFAULT_LIMITS.cell_timeout:g} in the default pack)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per notebook (default: the pack's [limits], "
                   f"{DEFAULT_LIMITS.notebook_timeout:g} in the default pack)")
    p.add_argument("--memory", type=float, default=None, metavar="GB",
                   help=f"address-space limit of each student kernel (default: the pack's, {DEFAULT_LIMITS.memory_gb:g}, "
                   "for the miniature, none otherwise; 0: none)")
    p.add_argument("--no-isolation", action="store_true",
                   help="do not run kernels as an unprivileged user in namespaces (resource limits still apply)")
    p.add_argument("--rubric", type=Path, help="a rubric.toml overriding points or disabling checks")
    p.add_argument("--no-report", action="store_true", help="skip the per-submission HTML reports")
    p.add_argument("--full-render", action="store_true", help="draw the 3-D token labels on the frames the "
                   "plotting cell makes (slower); by default they are drawn blank, with the same number of frames, "
                   "sizes, variables and errors")
    p.add_argument("--no-carry-forward", action="store_true", help="when Part 3's captures are wrong, do not run "
                   "the notebook again with correct captures to credit Part 5 (on by default)")
    p.add_argument("--allow-download", action="store_true",
                   help="let the grader (never a student kernel) download --model from the Hugging Face hub")


def _canvas_option(p: argparse.ArgumentParser) -> None:
    from grader.report.gradebook import DEFAULT_ASSIGNMENT

    p.add_argument("--canvas-assignment", default=None,
                   help="the assignment column of grades.csv, as Canvas's export names it: 'Name (id)' (default: "
                        f"the one recorded in the output folder's grading.json, else {DEFAULT_ASSIGNMENT!r})")


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    """One parser per verb; `grade PATH...` is the `grade` verb without its name."""
    parsers = {}
    p = parsers["grade"] = argparse.ArgumentParser(prog="grade", description="Grade submissions.")
    p.add_argument("paths", nargs="+", type=Path, help="notebooks, folders, zips (Canvas downloads welcome)")
    _run_options(p, "grading")
    _canvas_option(p)
    p.add_argument("--resume", action="store_true", help="grade only what --out lacks: the submissions not graded, "
                   "interrupted or ended in a grader error (with the --rubric and --canvas-assignment recorded there)")
    p.add_argument("--shard", type=shard_arg, help="grade the K-th of N slices (K/N), e.g. for a Slurm array")
    p.add_argument("--no-class-outputs", action="store_true", help="leave grades.csv, grades_detail.csv and "
                   "index.html to a later `grade summarize` (what `grade slurm`'s array tasks do)")
    p.add_argument("--only", nargs="+", metavar="ID", help="execute and grade again only these submissions (their "
                   "ids: the folder names in --out) inside an existing --out, the others untouched; then rebuild "
                   "the class outputs")
    p = parsers["check"] = argparse.ArgumentParser(prog="grade check", description="Check one notebook before "
                                                   "submitting it, on the miniature model, and print the verdicts.")
    p.add_argument("notebook", type=Path)
    p.add_argument("--full", dest="full_render", action="store_true", help="the same as --full-render: draw the "
                   "3-D token labels of tokens.gif's frames too (by default they are blank)")
    _run_options(p, None)
    p = parsers["summarize"] = argparse.ArgumentParser(prog="grade summarize", description="Rebuild grades.csv, "
                                                       "grades_detail.csv and index.html (after merging shard folders, "
                                                       "or after TAs recorded manual points).")
    p.add_argument("dir", type=Path)
    _canvas_option(p)
    p.add_argument("--rubric", type=Path, help="the rubric.toml used for grading, whose [late] policy applies "
                   "(default: the one recorded in DIR/grading.json)")
    p.add_argument("--require-manual", action="store_true",
                   help="refuse to write grades.csv while manual checks are not graded")
    p = parsers["rejudge"] = argparse.ArgumentParser(prog="grade rejudge", description="Judge the executions stored "
        "in DIR again (extracted.npz, execution.json, executed.ipynb, files/), without running any notebook: rewrite each "
        "results.json, report and the class outputs. The TAs' manual points (manual.json) are kept.")
    p.add_argument("dir", type=Path)
    p.add_argument("--rubric", type=Path, help="a rubric.toml to judge with (default: the one recorded in "
                   "DIR/grading.json); recorded there for later verbs")
    p.add_argument("--only", nargs="+", metavar="ID", help="re-judge only these submissions (folder names in DIR)")
    p.add_argument("--workers", type=int, help="judging processes (default: the batch's, 4+ submissions each)")
    _canvas_option(p)
    p = parsers["manual"] = argparse.ArgumentParser(prog="grade manual", description="The TA's manual checks as a "
                                                    "CSV: export one to fill in, import it back into DIR/manual.json.")
    p.add_argument("dir", type=Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--export", type=Path, metavar="FILE.csv")
    group.add_argument("--import", dest="import_", type=Path, metavar="FILE.csv")
    p.add_argument("--grader", default=os.environ.get("USER", "ta"), help="your name, recorded with each grade")
    p = parsers["review"] = argparse.ArgumentParser(prog="grade review", description="A local web page where a TA "
                                                    "grades the manual checks, one submission after another.")
    p.add_argument("dir", type=Path)
    p.add_argument("--port", type=port_arg, default=8000, help="1..65535 (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--grader", default=os.environ.get("USER", "ta"), help="your name, recorded with each grade")
    p = parsers["feedback"] = argparse.ArgumentParser(prog="grade feedback", description="One self-contained "
                                                      "feedback page (and a zip) per student, for the LMS.")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=folder_arg, required=True, metavar="FEEDBACK_DIR")
    p.add_argument("--after-due", action="store_true", help="release the full feedback (the rubric's `released` level); "
                   "refused while manual checks are pending")
    p.add_argument("--allow-pending", action="store_true",
                   help="with --after-due: release even while manual checks are pending (the pages say not graded yet)")
    p = parsers["student-kit"] = argparse.ArgumentParser(prog="grade student-kit", description="Write the self-check "
                                                         "kit students install: a wheel without the solution, and a README.")
    p.add_argument("kit_dir", type=folder_arg, metavar="KIT_DIR")
    p.add_argument("--assignment", default=None, metavar="PACK", help=f"the pack the kit checks (default: {DEFAULT_PACK})")
    p = parsers["gradescope-bundle"] = argparse.ArgumentParser(prog="grade gradescope-bundle",
                                                               description="Write Gradescope's autograder zip.")
    p.add_argument("zip", type=Path, metavar="FILE.zip")
    p = parsers["gradescope-run"] = argparse.ArgumentParser(prog="grade gradescope-run",
                                                            description="Grade inside Gradescope's /autograder layout.")
    _run_options(p, None)
    _slurm_parser(parsers)
    p = parsers["new-assignment"] = argparse.ArgumentParser(prog="grade new-assignment", description="Write a new "
        "assignment pack DIR for another model (a copy of a pack, golden/ made anew), then self-test it.")
    p.add_argument("dir", type=Path, metavar="DIR", help="the new pack's folder (new or empty); its name is the pack's")
    p.add_argument("--model", dest="model_id", required=True, metavar="ID", help="the model's hub id, found offline: "
                   "a shipped pack for it, a local folder holding config.json, or the Hugging Face cache")
    p.add_argument("--from", dest="base", metavar="PACK", help=f"the pack to copy (default: {DEFAULT_PACK})")
    p.add_argument("--prompt-file", type=Path, metavar="FILE", help="the new prompt (default: the copied pack's)")
    p.add_argument("--title", help="the [assignment] title (default: 'The residual stream of NAME on the unit sphere')")
    p.add_argument("--no-self-test", dest="self_test", action="store_false",
                   help="do not grade a solution notebook on the new pack's miniature")
    return parsers


def _slurm_parser(parsers: dict[str, argparse.ArgumentParser]) -> None:
    p = parsers["slurm"] = argparse.ArgumentParser(
        prog="grade slurm", description="Write OUT/slurm/grade.sbatch (a job array: task K grades --shard K/N into "
        "OUT) and OUT/slurm/summarize.sbatch (grade summarize OUT, after the whole array); --submit submits both.")
    p.add_argument("paths", nargs="+", type=Path, help="notebooks, folders, zips (Canvas downloads welcome)")
    p.add_argument("--shards", type=int, required=True, metavar="N", help="array tasks, each grading 1/N of the class")
    p.add_argument("--submit", action="store_true", help="submit both scripts with sbatch (default: only write them)")
    p.add_argument("--only-task", type=_task_list, metavar="K[,K...]",
                   help="submit only these array tasks (a rerun of failed or timed-out ones), then summarize again")
    slurm = p.add_argument_group("scheduler options (written as #SBATCH lines)")
    slurm.add_argument("--partition")
    slurm.add_argument("--account", help="e.g. def-yourpi on the Alliance clusters")
    slurm.add_argument("--time", help="per task, e.g. 02:00:00 (also the summarize job's limit)")
    slurm.add_argument("--cpus-per-task", type=int, help="per task; also each task's --workers unless given")
    slurm.add_argument("--mem", help="per task, e.g. 32G")
    slurm.add_argument("--gres", help="per task, e.g. gpu:1 for the real model (with --device cuda --memory 0)")
    slurm.add_argument("--sbatch-line", action="append", default=[], metavar="'#SBATCH ...'",
                       help="an extra line for both scripts (repeatable)")
    slurm.add_argument("--activate", action="append", default=[], metavar="'SHELL LINE'", help="a line that sets up "
                       "the environment in the job, e.g. 'module load python/3.11' (repeatable)")
    slurm.add_argument("--venv", type=Path, metavar="DIR", help="a virtual environment to activate in the job "
                       "(default without --activate/--venv: this interpreter, by its absolute path)")
    grading = p.add_argument_group("grading options (passed to every task's `grade`)")
    _run_options(grading, Path("grading"))
    _canvas_option(grading)
    p.set_defaults(workers=None)  # a task's default is its --cpus-per-task, not this login node's CPUs


def _task_list(text: str) -> list[int]:
    try:
        return [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--only-task expects task numbers such as 3 or 2,5, got {text!r}") from None


def _grading_dests() -> list[str]:
    """The dest of every option `_run_options` defines, but --out (the slurm verb passes them through)."""
    probe = argparse.ArgumentParser(add_help=False)
    _run_options(probe, None)
    return [dest for dest in vars(probe.parse_args([])) if dest != "out"]


def usage() -> str:
    return (__doc__.split("\n\n", 1)[1].rstrip() + "\n\n`grade VERB --help` lists the options of a verb; "
            "`grade --help-grade` those of grading.\n")


def _check_dir(path: Path) -> Path:
    """A graded output folder (holding <id>/results.json), or UsageError."""
    from grader.errors import UsageError

    if not Path(path).is_dir() or not any(Path(path).glob("*/results.json")):
        raise UsageError(f"{path} is not a graded output folder (expected <id>/results.json files written by `grade`)")
    return Path(path)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings of the arguments, validated (UsageError: nothing runs, nothing is written)."""
    from grader.errors import PackError
    from grader.errors import UsageError
    from grader.spec.pack import load_pack

    assignment = getattr(args, "assignment", None) or DEFAULT_PACK
    try:
        limits = load_pack(assignment).limits
    except PackError as exc:
        raise UsageError(f"--assignment: {exc} (nothing was run or written)") from None
    settings = Settings(assignment=assignment, model=args.model, device=args.device, workers=args.workers,
                        cell_timeout=limits.cell_timeout if args.cell_timeout is None else args.cell_timeout,
                        timeout=limits.notebook_timeout if args.timeout is None else args.timeout,
                        memory_gb=args.memory, isolate=not args.no_isolation,
                        rubric=args.rubric.resolve() if args.rubric else None, report=not args.no_report,
                        full_render=args.full_render, carry_forward=not getattr(args, "no_carry_forward", False))
    settings.validate()
    return settings


def _recorded_defaults(args: argparse.Namespace, out: Path) -> None:
    """--canvas-assignment and --rubric not given: take the ones recorded in OUT/grading.json, if any."""
    record = RunRecord.read(out) if Path(out).is_dir() else None
    if record is None:
        return
    if args.canvas_assignment is None:
        args.canvas_assignment = record.canvas_assignment
    if args.rubric is None and record.rubric:
        args.rubric = Path(record.rubric)
    if getattr(args, "assignment", None) is None:
        args.assignment = record.settings.get("assignment")


def resume_command(rest: list[str]) -> str:
    """The `grade` command line that finishes an interrupted run: the same arguments, with --resume."""
    return shlex.join(["grade", *rest, *([] if "--resume" in rest else ["--resume"])])


def _undeprecate(argv: list[str]) -> list[str]:
    """`grade --self-check NB` -> `grade check NB` (and the other old flags), with one line on stderr."""
    for flag, verb in DEPRECATED_FLAGS.items():
        for i, word in enumerate(argv):
            name, _, value = word.partition("=")
            if name == flag:
                print(f"note: `grade {flag}` is deprecated; use `grade {verb}`", file=sys.stderr)
                rest = argv[:i] + argv[i + 1:]
                takes_value = verb != "gradescope-run"
                if takes_value and not value and i < len(argv) - 1:
                    value, rest = argv[i + 1], argv[:i] + argv[i + 2:]
                return [verb, *([value] if takes_value else []), *rest]
    return argv


def run_verb(verb: str, args: argparse.Namespace) -> int:
    if verb == "grade":
        from grader.run.batch import GradingInterrupted, grade_paths

        if args.resume or args.only:
            _recorded_defaults(args, args.out)
        try:
            outcomes = grade_paths(args.paths, args.out, settings_from(args), resume=args.resume,
                                   shard_spec=args.shard, canvas_assignment=args.canvas_assignment,
                                   class_outputs=not args.no_class_outputs, only=args.only)
        except GradingInterrupted as stop:
            print(f"interrupted: {stop}. To grade the rest, run: {resume_command(args.rest)}", file=sys.stderr)
            return stop.exit_code
        return EXIT_GRADER_ERRORS if any(o.status == "grader_error" for o in outcomes) else EXIT_OK
    if verb == "check":
        from grader.run.selfcheck import run_self_check

        return run_self_check(args.notebook, settings_from(args), out=args.out)
    if verb == "summarize":
        from grader.report.gradebook import ManualPendingError, write_class_outputs
        from grader.errors import UsageError

        from grader.run.rejudge import rubric_changes

        given = args.rubric  # a rubric named here (not the recorded one) may change points
        _recorded_defaults(args, _check_dir(args.dir))
        problems = rubric_problems(args.rubric)
        if problems:
            raise UsageError("; ".join(problems) + " (nothing was written)")
        changes = rubric_changes(args.dir, args.rubric) if given is not None else []
        if changes:  # summarize totals the results as judged; new points need the checks judged again
            raise UsageError(f"--rubric {args.rubric} gives other points than {args.dir} was judged with "
                             f"({'; '.join(changes)}); `grade summarize` only adds up results, so run "
                             f"`grade rejudge {args.dir} --rubric {args.rubric}` (no notebook runs) to apply "
                             "them (nothing was written)")
        try:
            written = write_class_outputs(args.dir, canvas_assignment=args.canvas_assignment,
                                          rubric=args.rubric, require_manual=args.require_manual)
        except ManualPendingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        for warning in written.warnings + ([written.pending_text(args.dir)] if written.pending else []):
            print(f"warning: {warning}", file=sys.stderr)
        for note in written.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {written.paths['csv']}, {written.paths['detail']} and {written.paths['index']}")
        return EXIT_OK
    if verb == "rejudge":
        from grader.run.rejudge import rejudge

        rejudge(args.dir, args.rubric, args.only, args.canvas_assignment, workers=args.workers)
        return EXIT_OK
    if verb == "manual":
        from grader.manual.csvio import CsvImportError
        from grader.manual.store import ManualStoreError
        from grader.manual.verbs import run_export, run_import

        try:
            if args.export:
                return run_export(_check_dir(args.dir), args.export)
            return run_import(_check_dir(args.dir), args.import_, args.grader)
        except (CsvImportError, ManualStoreError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if verb == "review":
        from grader.manual.review import serve

        serve(_check_dir(args.dir), host=args.host, port=args.port, grader_name=args.grader)
        return EXIT_OK
    if verb == "feedback":
        from grader.run.feedback import run_feedback

        return run_feedback(_check_dir(args.dir), args.out, args.after_due, allow_pending=args.allow_pending)
    if verb == "student-kit":
        from grader.run.kit import run_student_kit

        return run_student_kit(args.kit_dir, args.assignment)
    if verb == "gradescope-bundle":
        from grader.run.gradescope import make_bundle

        print(f"wrote {make_bundle(args.zip)}")
        return EXIT_OK
    if verb == "new-assignment":
        from grader.run.new_assignment import new_assignment

        return new_assignment(args.dir, args.model_id, args.base, args.prompt_file, args.title, args.self_test)
    if verb == "slurm":
        from grader.run.slurm import array_from_args, run_slurm

        return run_slurm(array_from_args(args, _grading_dests()), args.submit, args.only_task)
    from grader.run.gradescope import run_in_container

    return run_in_container(settings_from(args))


def main(argv: list[str] | None = None) -> int:
    argv = _undeprecate(list(sys.argv[1:] if argv is None else argv))
    parsers = build_parsers()
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK if argv else EXIT_USAGE
    if argv[0] == "--help-grade":
        parsers["grade"].print_help()
        return EXIT_OK
    if argv[0] == "--version":
        print(f"grade {grader_version()}")
        return EXIT_OK
    verb, rest = (argv[0], argv[1:]) if argv[0] in parsers else ("grade", argv)
    args = parsers[verb].parse_args(rest)
    args.rest = rest
    if not getattr(args, "allow_download", False):
        os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # the hub only when asked for
    if getattr(args, "model", "tiny") != "tiny":
        for warning in Settings(model=args.model).model_warnings():
            print(f"warning: {warning}", file=sys.stderr)
    from grader.judge.rubric.config import RubricError
    from grader.errors import UsageError

    try:
        return run_verb(verb, args)
    except (UsageError, RubricError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before a batch started (or after it ended): nothing was left half-written
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
