"""The diagram evidence a TA looks at to grade p2.diagram, read from the graded folder.

Reads DIR/<id>/files/ (images and PDFs the student attached or the notebook wrote: listed here,
served by review.py) and DIR/<id>/executed.ipynb (images attached to markdown cells, through the TA
report's own `grader.report.sections.markdown_attachments`; images inlined as data: URIs; linked
images, named by `grader.judge.evidence.diagrams` / `remote_images` and listed, never loaded).
Writes nothing. Files are only ever opened through outdir.safe_path, so nothing outside DIR/<id>
is read. The written answer and the automated verdicts come from the graded Result (review.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from grader.io import SubmissionDir
from grader.judge.evidence import diagrams, remote_images
from grader.manual import outdir
from grader.report.render import IMAGE_MIME
from grader.report.sections import markdown_attachments
from grader.results import Result

NOT_DIAGRAMS = re.compile(r"^(tokens\.gif|frame_\d+\.png)$", re.IGNORECASE)  # the GIF and its frames
MAX_IMAGES = 12
MAX_EMBEDDED_B64 = 8 * 1024 * 1024  # characters of base64 per image inlined in a markdown cell's text
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
_DATA_URI = re.compile(r"data:(image/(?:png|jpeg|gif|webp|svg\+xml));base64,([A-Za-z0-9+/=\s]+)")


def diagram_files(out_dir: Path, sid: str) -> list[dict]:
    """Images and PDFs in DIR/<id>/files/ (never the GIF or its frames), names with 'diagram' first:
    [{"name", "rel" (path under DIR/<id>), "mime", "bytes"}]."""
    folder = Path(out_dir) / sid / "files"
    if not outdir.is_submission(out_dir, sid) or folder.is_symlink() or not folder.is_dir():
        return []
    out = []
    for entry in folder.iterdir():
        suffix = entry.suffix.lower()
        if NOT_DIAGRAMS.match(entry.name) or (suffix not in IMAGE_MIME and suffix != ".pdf"):
            continue
        path = outdir.safe_path(out_dir, sid, f"files/{entry.name}")
        if path is None:
            continue
        out.append({"name": entry.name, "rel": f"files/{entry.name}",
                    "mime": IMAGE_MIME.get(suffix, "application/pdf"), "bytes": path.stat().st_size})
    return sorted(out, key=lambda f: ("diagram" not in f["name"].lower(), f["mime"] == "application/pdf", f["name"]))


def load_notebook(out_dir: Path, sid: str) -> nbformat.NotebookNode | None:
    """DIR/<id>/executed.ipynb, or None (missing, too large, not a notebook)."""
    path = outdir.safe_path(out_dir, sid, SubmissionDir("").executed.name)
    if path is None or path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return None
    try:
        return nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 - unreadable or not a notebook: nothing embedded to show
        return None


def embedded_images(nb: nbformat.NotebookNode | None) -> list[dict]:
    """Images in markdown cells, attached or inlined as data: URIs: [{"name", "cell" (its index, as the
    TA report numbers cells), "src" (a data: URI)}], at most MAX_IMAGES."""
    out = [{"name": name, "cell": cell, "src": src} for cell, name, src in markdown_attachments(nb)]
    for index, cell in enumerate(nb.cells if nb is not None else []):
        if cell.get("cell_type") != "markdown":
            continue
        for n, m in enumerate(_DATA_URI.finditer(str(cell.get("source") or "")), start=1):
            payload = re.sub(r"\s+", "", m.group(2))
            if payload and len(payload) <= MAX_EMBEDDED_B64:
                out.append({"name": f"inline image {n}", "cell": index, "src": f"data:{m.group(1)};base64,{payload}"})
    return sorted(out, key=lambda im: im["cell"])[:MAX_IMAGES]


def listed_images(out_dir: Path, sid: str, nb: nbformat.NotebookNode | None, res: Result,
                  shown: set[str]) -> dict[str, list[str]]:
    """What the diagram card names without showing it: {"local": the judge's diagram candidates (attached
    images, images linked from markdown) not among `shown` (names of the files and attachments shown),
    "remote": images linked from the web (the Colab badge, ...), never loaded}."""
    folder = Path(out_dir) / sid
    files_dir = folder / "files" if not (folder / "files").is_symlink() else folder / ".no-files"
    local = [name for name in diagrams(nb, files_dir, res.submission.attachments)
             if name not in shown and Path(name.split(" (", 1)[0]).name not in shown]
    return {"local": local, "remote": remote_images(nb)}


def answer(res: Result) -> str | None:
    """The student's written explanation as the grader found it (summary.answer), None when blank."""
    text = res.summary.answer
    return text if isinstance(text, str) and text.strip() else None
