"""`grade --self-check my_notebook.ipynb`: a student's check on a laptop CPU.

Runs the notebook on the miniature Qwen3-4B exactly as the grader will (fresh kernel, same checks),
prints a table of verdicts with the feedback, lists what a TA still grades by hand, and exits 0
only when every automated check passes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from grader.intake.discovery import Discovery
from grader.intake.submission import Submission
from grader.settings import Settings


def _symbols() -> dict[str, str]:
    enc = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    try:
        "✓✗…".encode(enc)
        return {"passed": "✓", "failed": "✗", "error": "!", "manual": "…"}
    except (UnicodeEncodeError, LookupError):
        return {"passed": "PASS", "failed": "FAIL", "error": "ERR ", "manual": "TODO"}


def _submission(notebook: Path) -> Submission:
    subs = Discovery().find([notebook])
    sub = subs[0]
    if sub.notebook is not None:  # images next to the notebook count as attachments (the diagram)
        sub.attachments = sorted(p for p in notebook.parent.iterdir() if p.is_file() and p != notebook
                                 and p.suffix.lower() in {".png", ".jpg", ".jpeg", ".pdf", ".svg", ".gif"})[:20]
    return sub


def format_table(grade, width: int = 100) -> str:
    """One row per check; the full feedback of anything not passed, wrapped underneath."""
    sym = _symbols()
    lines = []
    for c in grade.checks:
        mark = sym.get(c.status, "?")
        pts = f"-/{c.max_points:g}" if c.manual else f"{c.points:g}/{c.max_points:g}"
        text = " ".join(c.output.split()) or "ok"
        if c.status == "passed" or (c.manual and not c.feedback):
            lines.append(f"  {mark:<4} {c.id:<22} {pts:>6}  {_clip(text, width - 38)}")
        else:
            lines.append(f"  {mark:<4} {c.id:<22} {pts:>6}")
            lines += textwrap.wrap(text, width - 8, initial_indent="        ", subsequent_indent="        ")
    return "\n".join(lines)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def run_self_check(notebook: Path, settings: Settings, out: Path | None = None) -> int:
    from grader.pipeline import grade_one

    notebook = Path(notebook)
    out_root = Path(out) if out else Path(tempfile.mkdtemp(prefix="grade-self-check-"))
    sub = _submission(notebook)
    out_dir = out_root / sub.id
    shutil.rmtree(out_dir, ignore_errors=True)
    print(f"Self-check of {notebook} on the miniature Qwen3-4B (CPU, no download). This runs your whole "
          "notebook in a fresh kernel; it takes a minute or two.", flush=True)
    settings.model, settings.workers = "tiny", 1
    grade = grade_one(sub, out_dir, settings, settings.execute_config(hide=[out_root], log=lambda *_: None))
    print(f"\nNotebook: {grade.status} - {grade.reason}")
    print(format_table(grade))
    auto = [c for c in grade.checks if not c.manual]
    passed = all(c.status == "passed" for c in auto)
    print(f"\nAutomated checks: {grade.score:g} of {grade.auto_max_score:g} points"
          + (" - all passed." if passed else f" - {sum(c.status != 'passed' for c in auto)} to fix."))
    if grade.manual_checks:
        print("Graded by a TA after you submit:")
        for c in grade.manual_checks:
            print(f"  - {c.id} ({c.max_points:g} points): {' '.join(c.output.split())}")
    print(f"Full report: {out_dir / 'report.html'}")
    return 0 if passed else 1
