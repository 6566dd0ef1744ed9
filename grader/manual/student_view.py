"""'What the student saw' on the review page: their own run on Colab, before the grader re-ran anything.

Reads DIR/<id>/submitted/ (the GIF the student attached and the image outputs stored in the notebook
they submitted) through `grader.judge.evidence.submitted_view`, and only what passes outdir.safe_path
(never outside DIR/<id>). Not DIR/<id>/files/tokens.gif: that is the grader's re-run on its
miniature model, not what the student saw. Beside it, the real trained-model panel the TA report
shows (`grader.report.sections.real_model_panel`, grader/report/dynamics.json), when there is one.
Writes nothing. `student_view(out_dir, sid)` returns the dict that templates/student_view.html
renders; add keys here and render them there.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from grader.judge.evidence import SubmittedView, submitted_view
from grader.manual import outdir
from grader.report.sections import real_model_panel

SUBMITTED = "submitted"  # DIR/<id>/submitted/, as grader.execute.workdir.keep_submitted writes it
MAX_GIF_BYTES = 20 * 1024 * 1024
_PANEL: list[dict] = []  # the real-model panel, drawn once per process


def student_view(out_dir: Path | str, sid: str) -> dict:
    """{"gif": a data:image/gif URI of the GIF the student submitted (None when absent or too large),
    "gif_name", "images": [{"cell", "src"}] stored image outputs of the submitted notebook,
    "stored_outputs": code cells that came with outputs, "dynamics": real_model() (None without one)}."""
    view = _submitted(Path(out_dir), sid)
    gif = None
    if view.gif is not None and view.gif.stat().st_size <= MAX_GIF_BYTES:
        data = view.gif.read_bytes()
        if data[:6] in (b"GIF87a", b"GIF89a"):
            gif = "data:image/gif;base64," + base64.b64encode(data).decode("ascii")
    return {"gif": gif, "gif_name": view.gif.name if gif else None,
            "images": [{"cell": cell, "src": src} for cell, src in view.images],
            "stored_outputs": view.stored_outputs, "dynamics": real_model()}


def _submitted(out_dir: Path, sid: str) -> SubmittedView:
    """submitted_view of DIR/<id>/submitted/, empty where a file there leads out of DIR/<id>."""
    folder = out_dir / sid / SUBMITTED
    notebook = f"{SUBMITTED}/notebook.ipynb"
    if not outdir.is_submission(out_dir, sid) or folder.is_symlink() or not folder.is_dir():
        return SubmittedView()
    if os.path.lexists(out_dir / sid / notebook) and outdir.safe_path(out_dir, sid, notebook) is None:
        return SubmittedView()
    view = submitted_view(folder)
    if view.gif is not None and outdir.safe_path(out_dir, sid, f"{SUBMITTED}/{view.gif.name}") is None:
        view.gif = None
    return view


def real_model() -> dict | None:
    """The TA report's real trained-model panel ({"model", "chart", "rows"}), or None while there is
    none (not computed yet, or grader/report/dynamics.py mid-change): the page shows it when it can."""
    if not _PANEL:
        try:
            panel = real_model_panel()
        except Exception:  # noqa: BLE001 - a missing or broken panel must not cost the review page
            return None
        if not isinstance(panel, dict):
            return None
        _PANEL.append(panel)
    return _PANEL[0]
