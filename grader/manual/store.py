"""The TA's manual grades: DIR/manual.json beside the per-submission folders of a graded output.

Reads and writes DIR/manual.json; locks DIR/.manual.lock; reads each submission's graded result
(`grader.results.Result`, through outdir.result: each manual check's max points, and
`summary.notebook_sha256`, the hash of the notebook the student submitted). Regrading rewrites
DIR/<id>/ only, so the grades survive it; an entry whose recorded notebook hash differs from the
current one belongs to an older version of the notebook (a resubmission) and is "stale". Where
either hash is unknown (None) the entry is never stale.

    {"format": "qwen3-interp-grader/manual-v1",
     "submissions": {"<id>": {"<check id>": {"points": 8.0, "comment": "...", "grader": "ana",
                                            "time": "2025-01-31T12:00:00+00:00",
                                            "notebook_sha256": "ab12..." | null}}}}

Every write is one transaction: an exclusive fcntl.flock on DIR/.manual.lock around
read-modify-write, the new content written with grader.io.write_atomic (a temporary file in DIR
moved over manual.json: readers never see a half-written file; concurrent writers lose nothing).
Where fcntl is missing (Windows) the lock is a best-effort lock file created exclusively. Invalid
input raises ManualGradeError before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from grader.io import write_atomic
from grader.manual import outdir
from grader.results import Result
from grader.errors import UsageError
from grader.report.manual_points import (  # noqa: F401 - the store's reading half, re-exported
    FORMAT, LOCK_NAME, STORE_NAME, Entry, ManualPoints, ManualStoreError, entry_is_stale)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MAX_COMMENT = 20_000
LOCK_TIMEOUT_S = 30.0
STALE_LOCKFILE_S = 120.0  # the fallback lock file of a writer that died is broken after this


class ManualGradeError(UsageError, ValueError):
    """A grade that cannot be recorded (unknown submission or check, points out of range)."""


def parse_points(value) -> float:
    """A finite number from an int/float or a string like "7.5"; ManualGradeError otherwise."""
    if isinstance(value, bool):
        raise ManualGradeError(f"points must be a number, found {value!r}")
    if isinstance(value, (int, float)):
        points = float(value)
    elif isinstance(value, str):
        try:
            points = float(value.strip())
        except ValueError:
            raise ManualGradeError(f"points must be a number, found {value!r}") from None
    else:
        raise ManualGradeError(f"points must be a number, found {value!r}")
    if not math.isfinite(points):
        raise ManualGradeError(f"points must be a finite number, found {value!r}")
    return points


class ManualStore(ManualPoints):
    """Manual grades of one graded output folder (DIR/manual.json): ManualPoints, plus validated, locked writes."""

    def is_stale(self, sid: str, check: str, current_sha: str | None = None) -> bool:
        """True when the entry was given for another version of the notebook: its recorded sha256 and
        the current one (given, or read from DIR) are both known and differ."""
        entry = self.get(sid, check)
        if entry is None or not entry.notebook_sha256:
            return False
        current = current_sha if current_sha is not None else self._current_sha(sid)
        return entry_is_stale(entry, current)

    def _current_sha(self, sid: str) -> str | None:
        """The sha256 of the notebook the current result of `sid` was graded for (None: unknown)."""
        return outdir.result(self.out_dir, sid).summary.notebook_sha256

    def pending(self, sid: str, manual_checks: Iterable[str], *, current_sha: str | None = None,
                entries: dict[str, Entry] | None = None) -> list[str]:
        """The checks of `manual_checks` that still need a TA: not graded, or graded for an older
        version of the notebook (stale). Order of `manual_checks`. `current_sha` and `entries` (this
        submission's, e.g. from snapshot()) save reading them again."""
        entries = self.entries_for(sid) if entries is None else entries
        current = current_sha if current_sha is not None else self._current_sha(sid)
        return [c for c in manual_checks if c not in entries or entry_is_stale(entries[c], current)]

    # ---- writing ------------------------------------------------------------------------------
    def set(self, sid: str, check: str, points, comment: str = "", grader: str = "") -> Entry:
        """Record (or replace) one grade and return its entry; ManualGradeError if `sid` is not a graded
        submission, `check` not one of its manual checks, or points are outside 0..max of the check."""
        written = self.set_many([(sid, check, points, comment)], grader)
        return written[0] if written else self.get(sid, check)

    def validate(self, sid: str, check: str, points, comment: str = "", *,
                 result: Result | None = None) -> tuple[float, str]:
        """(points, comment) as they would be stored; ManualGradeError with the reason otherwise.
        `result`: the submission's Result when the caller has read it already."""
        if not outdir.is_submission(self.out_dir, sid):
            raise ManualGradeError(f"unknown submission id {sid!r}: no folder {sid}/ with results.json in "
                                   f"{self.out_dir}")
        result = result if result is not None else outdir.result(self.out_dir, sid)
        checks = outdir.manual_checks(result)
        if check not in checks:
            kind = "an automated check" if check in outdir.all_check_ids(result) else "not a check"
            raise ManualGradeError(f"{check!r} is {kind}; the manual checks are {', '.join(checks) or 'none'}")
        value = parse_points(points)
        top = checks[check].max_points
        if not 0 <= value <= top:
            raise ManualGradeError(f"points for {check} must be between 0 and {top:g}, found {value:g}")
        comment = "" if comment is None else str(comment).replace("\r\n", "\n").replace("\r", "\n")
        if len(comment) > MAX_COMMENT:
            raise ManualGradeError(f"the comment is {len(comment)} characters long; at most {MAX_COMMENT}")
        return value, comment

    def set_many(self, items: Iterable[tuple[str, str, object, str]], grader: str) -> list[Entry]:
        """Record several grades in one locked transaction and return the entries written. Every item
        is validated first: on the first invalid one ManualGradeError is raised and nothing is written.
        An item equal to its entry (same points, comment and notebook) leaves it as it is (its grader
        and time are kept); saving the same grade on a stale entry re-confirms it for the new notebook."""
        grader = (grader or "").strip() or "unknown"
        prepared, results = [], {}
        for sid, check, points, comment in items:
            if sid not in results and outdir.is_submission(self.out_dir, sid):
                results[sid] = outdir.result(self.out_dir, sid)
            value, text = self.validate(sid, check, points, comment, result=results.get(sid))
            prepared.append((sid, check, value, text))
        if not prepared:
            return []
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        shas = {sid: res.summary.notebook_sha256 for sid, res in results.items()}
        written = []
        with self.transaction() as subs:
            for sid, check, value, text in prepared:
                old = self._entry(sid, check, (subs.get(sid) or {}).get(check))
                if old and (old.points, old.comment, old.notebook_sha256) == (value, text, shas[sid]):
                    continue
                entry = Entry(sid, check, value, text, grader, stamp, shas[sid])
                subs.setdefault(sid, {})[check] = entry.to_json()
                written.append(entry)
        return written

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Lock, load {sid: {check: entry}}, let the caller change it, write it back atomically if it
        changed. An exception inside the block writes nothing."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.lock_path):
            subs = self._load()
            before = json.dumps(subs, sort_keys=True)
            yield subs
            if json.dumps(subs, sort_keys=True) != before or not self.path.exists():
                self._write({"format": FORMAT, "submissions": {k: subs[k] for k in sorted(subs)}})

    def _write(self, doc: dict) -> None:
        """manual.json through grader.io.write_atomic, then the folder synced; a mode a TA gave the
        file (e.g. group-writable for a shared folder) is kept."""
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = None
        write_atomic(self.path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        if mode is not None and self.path.stat().st_mode & 0o777 != mode:
            os.chmod(self.path, mode)
        _fsync_dir(self.out_dir)


def _fsync_dir(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """An exclusive lock for read-modify-write of manual.json (flock, or a lock file without fcntl)."""
    if fcntl is None:
        with _lockfile(lock_path, timeout):
            yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ManualStoreError(f"{lock_path} is locked by another writer for over {timeout:g} s; "
                                           "nothing was written") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _lockfile(lock_path: Path, timeout: float) -> Iterator[None]:
    """Best effort without fcntl: the lock is held while lock_path exists (created with O_EXCL);
    one left by a writer that died is removed after STALE_LOCKFILE_S."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - lock_path.stat().st_mtime > STALE_LOCKFILE_S:
                    os.unlink(lock_path)
                    continue
            if time.monotonic() > deadline:
                raise ManualStoreError(f"{lock_path} exists (another writer?) for over {timeout:g} s; delete it if "
                                       "no one is saving grades; nothing was written") from None
            time.sleep(0.02)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
