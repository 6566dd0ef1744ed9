"""The kernel's working directory: created fresh, given the attachments, read back, removed.

`Workdir` is a context manager: a new temporary folder (owned by the kernel's uid in isolated mode)
holding copies of the submission's attachments under the student's own file names; afterwards
`collect(out_dir)` lists what the notebook left there and keeps images and GIFs (size-capped) in
out/<id>/files/. The folder is removed in `finally`, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from grader.execute.sandbox import Sandbox
from grader.intake.canvas import original_name
from grader.io import sha256

PROBE_OUT = ".grader-probe"  # folder in the working dir where extraction writes
SUBMITTED = "submitted"  # out/<id>/submitted/: the notebook and attachments as the student submitted them
KEPT_FILE_SUFFIXES = {".gif", ".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp"}
MAX_LISTED_FILES = 500


class Workdir:
    def __init__(self, sandbox: Sandbox, uid: int | None, keep: bool = False):
        self.sandbox, self.uid, self.keep = sandbox, uid, keep
        self.path: Path | None = None
        self.attached: dict[str, str] = {}  # file name in the working dir -> sha256, for attachments

    def __enter__(self) -> "Workdir":
        self.path = Path(tempfile.mkdtemp(prefix="qgrader-", dir=self.sandbox.workdir_base()))
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    @property
    def connection_dir(self) -> Path:
        return self.path / ".kernel"

    @property
    def probe_out(self) -> Path:
        return self.path / PROBE_OUT

    def stage(self, attachments: list[Path]) -> None:
        """Copy the attachments in (student's own names), make the folder the kernel user's own."""
        for f in attachments:
            target = self.path / original_name(f)
            shutil.copyfile(f, target)
            self.attached[target.name] = sha256(target)
        self.connection_dir.mkdir()
        if self.uid is not None:
            for path in [self.path, self.connection_dir, *self.path.iterdir()]:
                if path.is_dir():
                    self.sandbox.give_to_kernel(path, self.uid)
                else:
                    os.chown(path, self.uid, self.sandbox.cfg.gid)

    def collect(self, out_dir: Path, max_kept_bytes: int, notes: list[str]) -> list[dict]:
        """List what the notebook left in its working dir (and in the folder google.colab's drive.mount
        gave it); keep images and GIFs (size-capped)."""
        files_dir = out_dir / "files"
        shutil.rmtree(files_dir, ignore_errors=True)
        entries = []
        top = {p.name for p in self.path.iterdir()}
        mounted = [p for p in _files_below(self.path / "drive") if p.name not in top]
        for path in sorted(self.path.iterdir()) + mounted:
            if path.name.startswith(".") or path.name == PROBE_OUT or path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            keep = path.suffix.lower() in KEPT_FILE_SUFFIXES and size <= max_kept_bytes \
                and not path.name.startswith("frame_")
            if keep:
                files_dir.mkdir(exist_ok=True)
                shutil.copyfile(path, files_dir / path.name)
            # only a file named like an attachment is hashed (the working dir may hold 256 MB files)
            attached = path.name in self.attached and self.attached[path.name] == sha256(path)
            entries.append({"name": path.name, "bytes": size, "kept": keep,
                            "origin": "attachment" if attached else "notebook"})
            if len(entries) >= MAX_LISTED_FILES:
                notes.append(f"more than {MAX_LISTED_FILES} files in the working directory; the rest are not listed")
                break
        return entries


def keep_submitted(notebook: Path, attachments: list[Path], out_dir: Path, max_bytes: int) -> None:
    """What the student saw on Colab, before the grader re-runs anything: the notebook as submitted (its
    stored outputs) and the images and GIF they attached, in out/<id>/submitted/ (size-capped)."""
    folder = out_dir / SUBMITTED
    shutil.rmtree(folder, ignore_errors=True)
    for f in [notebook, *attachments]:
        keep = f == notebook or f.suffix.lower() in KEPT_FILE_SUFFIXES
        if keep and f.is_file() and f.stat().st_size <= max_bytes:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, folder / ("notebook.ipynb" if f == notebook else original_name(f)))


def _files_below(folder: Path, limit: int = MAX_LISTED_FILES) -> list[Path]:
    """Regular files under folder, links not followed, at most `limit`."""
    found = []
    for root, _, names in os.walk(folder, followlinks=False):
        found += [Path(root) / n for n in sorted(names) if not (Path(root) / n).is_symlink()]
        if len(found) >= limit:
            break
    return sorted(found[:limit])
