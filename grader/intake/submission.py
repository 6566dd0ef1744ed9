"""One student's submission: the notebook, its attachments, who submitted it; and its JSON forms.

`Submission` is what discovery found (paths on this machine); it crosses to a worker process as
JSON (`to_json` / `from_json`). `SubmissionInfo` is what the outputs say about it (submission.json:
display names, no local paths beyond `source`), read back by reports and the gradebook.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from grader.intake.canvas import original_name
from grader.io import sha256


@dataclass
class SubmissionInfo:
    """submission.json: who submitted what, as reports and the gradebook show it."""

    id: str
    source: str | None = None
    student_name: str | None = None
    student_id: str | None = None
    late: bool = False
    notebook: str | None = None  # the notebook's file name
    attachments: list[str] = field(default_factory=list)  # the student's own file names
    notes: list[str] = field(default_factory=list)
    notebook_sha256: str | None = None  # of the submitted file: a TA's manual points belong to this version

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None, default_id: str = "") -> "SubmissionInfo":
        data = dict(data or {})
        data.setdefault("id", default_id)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Submission:
    id: str  # stable, filesystem-safe; the folder name under --out
    source: str  # what the instructor pointed at, for messages
    notebook: Path | None = None
    attachments: list[Path] = field(default_factory=list)
    student_name: str | None = None
    student_id: str | None = None
    late: bool = False
    attachment_id: int | None = None
    problem: str | None = None  # why this cannot be executed as it is
    notes: list[str] = field(default_factory=list)

    def info(self) -> SubmissionInfo:
        return SubmissionInfo(id=self.id, source=self.source, student_name=self.student_name,
                              student_id=self.student_id, late=self.late,
                              notebook=self.notebook.name if self.notebook else None,
                              attachments=[original_name(p) for p in self.attachments], notes=list(self.notes),
                              notebook_sha256=sha256(self.notebook) if self.notebook and self.notebook.is_file() else None)

    def to_json(self) -> dict:
        d = asdict(self)
        d["notebook"] = str(self.notebook) if self.notebook else None
        d["attachments"] = [str(p) for p in self.attachments]
        return d

    @classmethod
    def from_json(cls, data: dict) -> "Submission":
        d = dict(data)
        d["notebook"] = Path(d["notebook"]) if d.get("notebook") else None
        d["attachments"] = [Path(p) for p in d.get("attachments", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
