"""The TA's points as graded: reading DIR/manual.json (the format grader/manual/store.py writes), for the
class totals and the student's pages. Reads only; never locks (every write replaces the file atomically,
so a reader never sees half of one). The TA tools (grader/manual) write it; the report, and the student
kit that has no TA tools, read it here.

    {"format": "qwen3-interp-grader/manual-v1",
     "submissions": {"<id>": {"<check id>": {"points": 8.0, "comment": "...", "grader": "ana",
                                            "time": "2025-01-31T12:00:00+00:00",
                                            "notebook_sha256": "ab12..." | null}}}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from grader.errors import GraderError

STORE_NAME = "manual.json"
LOCK_NAME = ".manual.lock"
FORMAT = "qwen3-interp-grader/manual-v1"


class ManualStoreError(GraderError, RuntimeError):
    """manual.json cannot be read or locked; nothing was written."""


@dataclass(frozen=True)
class Entry:
    sid: str
    check: str
    points: float
    comment: str
    grader: str
    time: str
    notebook_sha256: str | None

    def to_json(self) -> dict:
        d = asdict(self)
        del d["sid"], d["check"]
        return d


def entry_is_stale(entry: Entry | None, current_sha: str | None) -> bool:
    """The entry's recorded notebook sha256 and `current_sha` are both known and differ."""
    return bool(entry and entry.notebook_sha256 and current_sha and entry.notebook_sha256 != current_sha)


class ManualPoints:
    """The manual points recorded in one graded output folder (DIR/manual.json), read only."""

    def __init__(self, out_dir: Path | str):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / STORE_NAME
        self.lock_path = self.out_dir / LOCK_NAME

    # ---- reading ------------------------------------------------------------------------------
    def _load(self) -> dict:
        """{sid: {check: entry dict}} from manual.json ({} when it does not exist yet)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ManualStoreError(f"cannot read {self.path}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManualStoreError(f"{self.path} is not valid JSON ({exc}); fix or move it, nothing was "
                                   "written") from None
        subs = data.get("submissions") if isinstance(data, dict) else None
        if not isinstance(subs, dict):
            raise ManualStoreError(f"{self.path} has no 'submissions' object; fix or move it, nothing was written")
        return subs

    @staticmethod
    def _entry(sid: str, check: str, raw) -> Entry | None:
        if not isinstance(raw, dict):
            return None
        try:
            points = float(raw.get("points"))
        except (TypeError, ValueError):
            return None
        return Entry(sid=sid, check=check, points=points, comment=str(raw.get("comment") or ""),
                     grader=str(raw.get("grader") or ""), time=str(raw.get("time") or ""),
                     notebook_sha256=raw.get("notebook_sha256") or None)

    def get(self, sid: str, check: str) -> Entry | None:
        raw = self._load().get(sid, {})
        return self._entry(sid, check, raw.get(check)) if isinstance(raw, dict) else None

    def entries_for(self, sid: str) -> dict[str, Entry]:
        """{check id: Entry} of one submission."""
        return self.snapshot().get(sid, {})

    def snapshot(self) -> dict[str, dict[str, Entry]]:
        """{sid: {check id: Entry}} of every submission, from one read of manual.json."""
        out: dict[str, dict[str, Entry]] = {}
        for sid, checks in self._load().items():
            if isinstance(checks, dict):
                entries = {check: e for check, raw in checks.items() if (e := self._entry(sid, check, raw))}
                if entries:
                    out[sid] = entries
        return out

    def all(self) -> list[Entry]:
        """Every entry, sorted by submission id then check id."""
        out = []
        for sid, checks in sorted(self._load().items()):
            if isinstance(checks, dict):
                out += [e for check, raw in sorted(checks.items()) if (e := self._entry(sid, check, raw))]
        return out
