"""Files the grader writes and reads back: atomic writes, JSON, npz without pickle, sha256, and the
output folder's layout (`SubmissionDir`: every file name of out/<id>/ spelled once).

Every file in an output folder is written through `write_atomic`, so a reader (a TA's browser, a
resumed batch, `grade summarize`) sees the old content or the new, never a partial file. Files get
the permissions the umask gives (0644 / 0664 on a shared server), not mkstemp's private 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


class SubmissionDir(type(Path())):
    """out/<id>/, the interface between the stages: each file's name is spelled here and nowhere else.

        submitted/        the submission as received (notebook.ipynb, attachments)      intake / batch
        execution.json    how the run ended, hooks, forwards, model (ExecutionRecord)   execute
        executed.ipynb    the notebook with its outputs                                 execute
        extracted.npz     captures and projections read from the kernel                 execute
        files/            files the notebook wrote (tokens.gif)                         execute
        carry/            the carried-forward run, a SubmissionDir of its own + carry.json   execute.carry
        comparison.json   the judged numbers (Comparison)                               judge, via pipeline
        submission.json   who and what (SubmissionInfo)                                 pipeline
        report.html       the student's page                                            report
        results.json      Gradescope's schema; written last: its presence means "done"  pipeline
    """

    @property
    def execution(self) -> Path:
        return self / "execution.json"

    @property
    def executed(self) -> Path:
        return self / "executed.ipynb"

    @property
    def extracted(self) -> Path:
        return self / "extracted.npz"

    @property
    def files(self) -> Path:
        return self / "files"

    @property
    def submitted(self) -> Path:
        return self / "submitted"

    @property
    def comparison(self) -> Path:
        return self / "comparison.json"

    @property
    def submission(self) -> Path:
        return self / "submission.json"

    @property
    def report(self) -> Path:
        return self / "report.html"

    @property
    def results(self) -> Path:
        return self / "results.json"

    @property
    def carry(self) -> "SubmissionDir":
        return SubmissionDir(self / "carry")

    @property
    def carry_info(self) -> Path:
        return self / "carry.json"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import (os.umask can only be read by setting it)


def _temp_file(path: Path, suffix: str = "") -> tuple[int, str]:
    """A temporary file beside path, with the mode a new file gets under the umask."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.chmod(tmp, 0o666 & ~UMASK)  # (os.fchmod is not on Windows before Python 3.13)
    return fd, tmp


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1, default=str) + "\n")


def read_json(path: Path, default=None):
    """The JSON in path, or `default` when the file is missing or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez, atomically (a temp file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path: Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an npz file (only `keys` when given), never unpickling; {} when it is missing."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        names = z.files if keys is None else [k for k in keys if k in z.files]
        return {k: z[k] for k in names}


def sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
