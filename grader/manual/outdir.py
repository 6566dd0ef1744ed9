"""Read-only access to a graded output folder (`grade ... --out DIR`) for the TA's manual grading.

Reads, never writes:
  DIR/<id>/results.json + submission.json   through the typed view `grader.results.Result.read`
                                            (checks with their `manual` flag and max points as graded,
                                            the Summary with the submitted notebook's sha256, the
                                            SubmissionInfo); nothing here reads results.json by key
  grader/judge/rubric                             the default rubric's manual checks, only as a fallback for a
                                            results.json that lists no checks
  DIR/grading.json                          what `grade` was asked (written before grading):
                                            {"grader_version", "canvas_assignment", "rubric": abs path
                                            or null, "settings": {...}}; read tolerantly by
                                            `grading_record` so the TA's verbs rebuild the class outputs
                                            as grading wrote them

A submission is a folder of DIR (not hidden, not a symlink) that holds a results.json.
`safe_path` is the one place that turns a user-supplied relative path into a file: resolved, and
inside both DIR and the submission's folder, or None.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from grader.io import SubmissionDir
from grader.results import CheckResult, Result

RESULTS = SubmissionDir("").results.name
GRADING_RECORD = "grading.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def submission_ids(out_dir: Path) -> list[str]:
    """Ids of the graded submissions in DIR, sorted (stable order for next/previous)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(entry.name for entry in out_dir.iterdir() if is_submission(out_dir, entry.name))


def is_submission(out_dir: Path, sid: str) -> bool:
    """True when `sid` names an existing submission folder of DIR (no path tricks)."""
    if not isinstance(sid, str) or not _ID_RE.match(sid):
        return False
    folder = Path(out_dir) / sid
    return not folder.is_symlink() and folder.is_dir() and (folder / RESULTS).is_file()


def result(out_dir: Path, sid: str) -> Result:
    """The graded result of DIR/<id>; an empty one (no checks, no hash, no name) when results.json
    cannot be read, so a broken folder still lists and pages instead of failing."""
    return Result.read(Path(out_dir) / sid) or Result.from_json({}, None, sid)


def student_name(res: Result) -> str:
    """The student's name as the grader recorded it ("" when unknown)."""
    return res.summary.student_name or res.submission.student_name or ""


def manual_checks(res: Result) -> dict[str, CheckResult]:
    """The manual checks of one submission as it was graded: {check id: CheckResult}, rubric order;
    those of the default rubric when results.json lists no checks at all."""
    if res.checks:
        return {c.id: c for c in res.checks if c.manual}
    return default_manual_checks()


def default_manual_checks() -> dict[str, CheckResult]:
    """The manual checks of the default rubric (the checks' markers + the default pack's rubric)."""
    try:
        from grader.judge.rubric.config import load_rubric
        from grader.judge.rubric.runner import not_graded

        checks = not_graded(load_rubric(), "not graded yet")
    except Exception:  # noqa: BLE001 - the rubric package may be mid-change; degrade to nothing
        return {}
    return {c.id: c for c in checks if c.manual}


def all_check_ids(res: Result) -> set[str]:
    """Every check id (manual or not) graded for this submission."""
    return {c.id for c in res.checks}


def safe_path(out_dir: Path, sid: str, rel: str) -> Path | None:
    """DIR/<sid>/<rel> as a resolved regular file inside DIR/<sid>, or None: refuses absolute paths,
    `..`, hidden components, backslashes, and symlinks that lead out of the submission's folder."""
    if not is_submission(out_dir, sid) or not isinstance(rel, str) or not rel:
        return None
    if "\\" in rel or "\x00" in rel or rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    root = Path(out_dir).resolve()
    folder = (root / sid).resolve()
    try:
        target = (folder / Path(*parts)).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or not target.is_relative_to(folder) or not target.is_file():
        return None
    return target


@dataclass(frozen=True)
class GradingRecord:
    """The class-output settings `grade` recorded in DIR/grading.json (None: the default)."""

    canvas_assignment: str | None = None  # the grades.csv column, as Canvas names it
    rubric: Path | None = None  # the rubric.toml grading used (its [late] policy); None: the default rubric
    source: str = ""  # where these came from, as a message says it

    def kwargs(self) -> dict:
        """Keyword arguments of grader.report.gradebook.write_class_outputs."""
        return {"rubric": self.rubric, **({"canvas_assignment": self.canvas_assignment}
                                          if self.canvas_assignment else {})}


def grading_record(out_dir: Path) -> GradingRecord:
    """DIR/grading.json read tolerantly: absent, unreadable or of another shape gives the defaults,
    with `source` saying so."""
    path = Path(out_dir) / GRADING_RECORD
    defaults = "the default assignment column and rubric"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return GradingRecord(source=f"{path} not found (graded by an earlier version?), so {defaults}")
    except (OSError, ValueError) as exc:
        return GradingRecord(source=f"{path} could not be read ({exc.__class__.__name__}: {exc}), so {defaults}")
    assignment = data.get("canvas_assignment") if isinstance(data, dict) else None
    rubric = data.get("rubric") if isinstance(data, dict) else None
    if not isinstance(assignment, str) or not assignment.strip() or not (rubric is None or isinstance(rubric, str)):
        return GradingRecord(source=f"{path} has no usable canvas_assignment (a string) and rubric (a path or null), "
                                    f"so {defaults}")
    return GradingRecord(assignment, Path(rubric) if rubric else None,
                         f"the settings recorded in {path}: column {assignment!r}, "
                         + (f"rubric {rubric}" if rubric else "the default rubric"))
