"""Canvas's names for downloaded submission files, and the ids the grader derives from them.

Canvas names files `{sortablename}[_LATE]_{user_id}_{attachment_id}_{filename}` (anonymous grading:
`anon_{id}[_LATE]_[{user_id}_]{attachment_id}_{filename}`; a resubmission adds `-N` to the student's
own file name). The student, the id and the late flag come from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CANVAS_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9\-]*?)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)$")
CANVAS_ANON = re.compile(r"^anon_(?P<anon>[A-Za-z0-9]+)(?P<late>_LATE)?_(?:(?P<uid>\d+)_)?(?P<aid>\d+)_(?P<file>.+)$")
RESUBMISSION = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)(?P<ext>\.[^.]+)?$")


@dataclass
class CanvasName:
    student: str  # sortable name, or "anon_<id>"
    user_id: str | None
    attachment_id: int
    late: bool
    filename: str  # the student's own file name, resubmission suffix removed
    resubmission: int = 0


def parse_canvas_name(filename: str) -> CanvasName | None:
    m = CANVAS_ANON.match(filename)
    if m:
        student, uid = f"anon_{m['anon']}", m["uid"] or m["anon"]
    else:
        m = CANVAS_NAME.match(filename)
        if not m:
            return None
        student, uid = m["name"], m["uid"]
    original, resub = m["file"], 0
    r = RESUBMISSION.match(original)
    if r:
        original, resub = r["stem"] + (r["ext"] or ""), int(r["n"])
    return CanvasName(student, uid, int(m["aid"]), bool(m["late"]), original, resub)


def original_name(path: Path) -> str:
    """The student's own file name: 'decoder_diagram.png' for 'doejane_12_34_decoder_diagram.png'."""
    canvas = parse_canvas_name(Path(path).name)
    return canvas.filename if canvas else Path(path).name


def safe_id(text: str) -> str:
    """Filesystem-safe and stable: letters, digits, '-', '_', '.' only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return cleaned[:80] or "submission"
