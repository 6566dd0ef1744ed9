"""`grade-check my_notebook.ipynb [--full]` (also `grade check`): a student's check on a laptop CPU.

Runs the notebook on the miniature Qwen3-4B exactly as the grader will (fresh kernel, every cell,
same checks), prints each check (✓/✗, points, feedback at the rubric's `self_check` visibility), lists
what a TA still grades by hand, writes the student's page (report.html: the feedback page of
grader/run/feedback.py, not the TA's report), and exits 0 only when every automated check passes (1
otherwise, 2 on a usage error: no such file, not a notebook).

The plotting cell runs as written, whether it is the assignment's provided code or the student's
variant of it, as it does in `grade`: its frames are drawn with the 3-D token labels blank
(grader/execute/fastplot.py), which makes them several times cheaper and changes neither the number of
frames, their size, the files, the variables nor the errors, so `p5.gif` is judged. `--full` draws the
labels too (`grade --full-render`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from grader.status import CheckStatus
from grader.io import SubmissionDir
from grader.intake.discovery import Discovery
from grader.intake.submission import Submission
from grader.settings import Settings, folder_arg, grader_version
from grader.spec.pack import DEFAULT_LIMITS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _symbols() -> dict[str, str]:
    enc = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    try:
        "✓✗…–".encode(enc)
        return {s.value: s.symbol for s in CheckStatus}
    except (UnicodeEncodeError, LookupError):
        return {s.value: s.ascii for s in CheckStatus}


def _submission(notebook: Path) -> Submission:
    subs = Discovery().find([notebook])
    sub = subs[0]
    if sub.notebook is not None:  # images next to the notebook count as attachments (the diagram)
        sub.attachments = sorted(p for p in notebook.parent.iterdir() if p.is_file() and p != notebook
                                 and p.suffix.lower() in {".png", ".jpg", ".jpeg", ".pdf", ".svg", ".gif"})[:20]
    return sub


def format_table(grade, width: int = 100, visibilities: dict[str, str] | None = None) -> str:
    """One row per check; the feedback (at each check's visibility) of anything not passed, wrapped underneath."""
    sym = _symbols()
    visibilities = visibilities or {}
    lines = []
    for c in grade.checks:
        vis = visibilities.get(c.id, "full")
        mark = sym.get(c.status, "?")
        pts = f"-/{c.max_points:g}" if c.manual else f"{c.points:g}/{c.max_points:g}"
        text = " ".join(c.text(vis).split()) or "ok"
        if vis == "brief" and c.withheld and c.status != "passed":
            text += " (How to fix it is not shown in the self-check.)"
        if c.status == "passed" or c.manual:  # a TA check's evidence is listed in full below the table
            lines.append(f"  {mark:<4} {c.id:<22} {pts:>6}  {_clip(text, width - 38)}")
        else:
            lines.append(f"  {mark:<4} {c.id:<22} {pts:>6}")
            lines += textwrap.wrap(text, width - 8, initial_indent="        ", subsequent_indent="        ")
    return "\n".join(lines)


def run_label(nb, index: int) -> str:
    """The prompt the grader's run gives the cell at `index` ("In [9]"), as every reason and report names it:
    code cells with source run top to bottom, one count each."""
    from grader.execute.records import cell_label

    count = sum(1 for c in nb.cells[:index + 1] if c.cell_type == "code" and c.source.strip())
    return cell_label(count, index)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _read_notebook(notebook: Path):
    """The notebook, or UsageError saying why this is not one."""
    from grader.execute.executor import read_notebook
    from grader.errors import UsageError

    if not notebook.exists():
        raise UsageError(f"{notebook} does not exist")
    if notebook.is_dir():
        raise UsageError(f"{notebook} is a folder; give the notebook file (.ipynb)")
    if notebook.suffix.lower() != ".ipynb":
        raise UsageError(f"{notebook} is not a Jupyter notebook (expected a .ipynb file)")
    try:
        return read_notebook(notebook)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_self_check(notebook: Path, settings: Settings, out: Path | None = None, full: bool = False) -> int:
    """Check one notebook; 0 when every automated check passed, 1 otherwise. UsageError (exit 2 in the
    CLIs) when the file is missing or not a notebook. `full` (or settings.full_render) draws the plotting
    cell's 3-D labels too."""
    from grader.judge.golden import GoldenUnavailable
    from grader.pipeline import grade_one
    from grader.judge.rubric.config import visibility

    notebook = Path(notebook)
    _read_notebook(notebook)
    out_root = Path(out) if out else Path(tempfile.mkdtemp(prefix="grade-self-check-"))
    sub = _submission(notebook)
    out_dir = out_root / sub.id
    shutil.rmtree(out_dir, ignore_errors=True)
    settings.full_render = settings.full_render or full
    print(f"Self-check of {notebook} on the miniature {settings.pack.model.name} (CPU, no download). This runs every cell of your "
          "notebook in a fresh kernel, as the grader will" + ("." if settings.full_render else
          "; the frames of tokens.gif are drawn with their 3-D token labels blank, which is several times faster "
          "and changes neither their number nor their size. `--full` draws the labels too."), flush=True)
    settings.model, settings.workers, settings.report = "tiny", 1, False
    rubric = settings.load_rubric()
    try:
        grade = grade_one(sub, out_dir, settings, settings.execute_config(hide=[out_root], log=lambda *_: None),
                          rubric=rubric)
    except GoldenUnavailable as exc:
        print(f"\nYour notebook ran, but it cannot be checked here: {exc}.")
        print(_prompt_difference(out_dir))
        return EXIT_FAILED
    vis = {c.id: visibility(rubric, c.id, "self_check") for c in grade.checks}
    print(f"\nNotebook: {grade.status} - {grade.reason}")
    print(format_table(grade, visibilities=vis))
    ran = [c for c in grade.checks if not c.manual]
    passed = all(c.status == "passed" for c in ran)
    points = sum(c.points for c in ran)
    possible = sum(c.max_points for c in ran)
    print(f"\nAutomated checks: {points:g} of {possible:g} points"
          + (" - all passed." if passed else f" - {sum(c.status != 'passed' for c in ran)} to fix."))
    if grade.manual_checks:
        print("Graded by a TA after you submit:")
        for c in grade.manual_checks:
            print(f"  - {c.id} ({c.max_points:g} points): {' '.join(c.text(vis.get(c.id, 'full')).split())}")
    try:
        from grader.run.feedback import write_student_page

        # the student's page, not the TA's report (no reference spheres, hints at self-check visibility)
        page = write_student_page(out_dir, rubric, "self_check", name="report.html")
        if page is not None:
            print(f"Your report: {page}")
    except Exception as exc:  # noqa: BLE001 - the page is a convenience; the verdicts above stand
        print(f"(the feedback page could not be written: {exc!r})")
    return EXIT_OK if passed else EXIT_FAILED


def _prompt_difference(out_dir: Path) -> str:
    """What the recorded forwards say about the prompt, for a notebook that ran other tokens."""
    try:
        from grader.execute.records import read_execution
        from grader.judge.golden import GoldenStore
        from grader.judge.prompt import compare_prompt

        store = GoldenStore("tiny")
        verdict = compare_prompt(read_execution(SubmissionDir(out_dir).execution), store.get(), store.decode)
        if verdict.first_difference:
            return f"Part 4: {verdict.first_difference}."
    except Exception:  # noqa: BLE001
        pass
    return "Part 4: use the assignment's prompt exactly as given."


def check_main(argv: list[str] | None = None) -> int:
    """The `grade-check` console script: grade-check NOTEBOOK [--full] [--out DIR]."""
    from grader.errors import UsageError

    for stream in (sys.stdout, sys.stderr):  # a Windows console in cp1252 must not end the check on a token's text
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):
            pass

    p = argparse.ArgumentParser(prog="grade-check", description="Check your notebook before you submit it: runs it "
                                "on a miniature of the assignment's model on your CPU, exactly as the grader will, and "
                                "prints each check.")
    p.add_argument("notebook", type=Path, help="your notebook (.ipynb); put your diagram image next to it")
    p.add_argument("--full", action="store_true", help="draw the 3-D token labels on the frames of tokens.gif too, as "
                   "on Colab (slower: about a second more per frame); by default they are left blank, which changes no verdict")
    p.add_argument("--out", type=folder_arg, help="keep the outputs (feedback page, executed notebook) in this folder")
    p.add_argument("--cell-timeout", type=float, default=DEFAULT_LIMITS.cell_timeout,
                   help=f"seconds per cell (default {DEFAULT_LIMITS.cell_timeout:g})")
    p.add_argument("--timeout", type=float, default=DEFAULT_LIMITS.notebook_timeout,
                   help=f"seconds for the whole notebook (default {DEFAULT_LIMITS.notebook_timeout:g})")
    p.add_argument("--version", action="version", version=f"%(prog)s {grader_version()}")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # --help, or bad arguments (argparse said why)
        return EXIT_OK if not exc.code else EXIT_USAGE
    settings = Settings(model="tiny", workers=1, cell_timeout=args.cell_timeout, timeout=args.timeout, report=False)
    try:
        settings.validate()
        return run_self_check(args.notebook, settings, out=args.out, full=args.full)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(check_main())
