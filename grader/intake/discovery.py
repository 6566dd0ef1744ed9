"""Find the submissions in what the instructor points `grade` at.

Accepted: a folder of submissions (Canvas bulk download, loose notebooks, one folder per student,
zips), single `.ipynb` files, per-student folders, and `.zip` files (one student's, or a whole
Canvas download). Canvas names `{sortablename}[_LATE]_{user_id}_{attachment_id}_{filename}`
(and `anon_{id}_...`, resubmissions `name-1.ipynb`) give the student id, name and late flag.
Every submission gets a stable, filesystem-safe id. Anything that cannot be graded still becomes a
Submission with a `problem`, so it ends as a result with a reason instead of being skipped; where its
name is a Canvas name (a corrupt zip, an unreadable notebook, a folder without a notebook), the
student, the Canvas id and the late flag still come from that name, so grades.csv can match the row.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from grader.intake.canvas import CanvasName, parse_canvas_name, safe_id
from grader.intake.submission import Submission

IGNORED_PARTS = {".ipynb_checkpoints", "__MACOSX", "__pycache__", ".git"}
MAX_ZIP_BYTES = 2 << 30  # uncompressed size accepted from one zip
MAX_ATTACHMENTS = 50
# Loose files that go with a notebook (the diagram, tokens.gif); anything else stands alone.
ATTACHMENT_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".webp"}


def _ignored(path: Path) -> bool:
    return any(part in IGNORED_PARTS or part.startswith("._") for part in path.parts)


class ZipProblem(ValueError):
    pass


def path_submission(path: Path, **fields) -> Submission:
    """A Submission for one file or folder; a Canvas name gives the student, the id and the late flag,
    whatever the file holds (it may be corrupt, or not a notebook at all)."""
    canvas = parse_canvas_name(path.name)
    if canvas is None:
        return Submission(id=safe_id(path.stem), source=str(path), **fields)
    return Submission(id=safe_id(f"{canvas.student}_{canvas.user_id}"), source=str(path), student_name=canvas.student,
                      student_id=canvas.user_id, late=canvas.late, attachment_id=canvas.attachment_id, **fields)


def safe_extract(zip_path: Path, dest: Path) -> None:
    """Extract a zip, refusing path traversal, links and zip bombs."""
    with zipfile.ZipFile(zip_path) as zf:
        total = 0
        for info in zf.infolist():
            name = info.filename
            target = (dest / name).resolve()
            if name.startswith(("/", "\\")) or ".." in Path(name).parts or not str(target).startswith(str(dest.resolve())):
                raise ZipProblem(f"the zip entry {name!r} points outside the zip's folder (path traversal); nothing was extracted")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ZipProblem(f"the zip entry {name!r} is a symbolic link; nothing was extracted")
            total += info.file_size
        if total > MAX_ZIP_BYTES:
            raise ZipProblem(f"the zip expands to {total} bytes, more than the {MAX_ZIP_BYTES} accepted")
        zf.extractall(dest)


class Discovery:
    """Turns paths into Submissions. Holds the temporary folders of extracted zips (`cleanup()`)."""

    def __init__(self) -> None:
        self.temp_dirs: list[Path] = []
        self.notes: list[str] = []  # batch-level notes (files that belong to nobody, ...)

    def cleanup(self) -> None:
        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)

    def find(self, paths: list[Path]) -> list[Submission]:
        subs: list[Submission] = []
        for path in paths:
            path = Path(path)
            if not path.exists():
                subs.append(path_submission(path, problem=f"{path} does not exist"))
            elif path.is_dir() and path.suffix == ".ipynb":  # the executor reports it as an invalid notebook
                subs.append(path_submission(path, notebook=path))
            elif path.is_dir():
                subs += self._folder(path)
            elif path.suffix.lower() == ".zip":
                subs += self._zip(path)
            else:
                subs += self._loose_files([path], source=str(path))
        return self._deduplicate(self._unique_ids(subs))

    # -- the forms a submission can take ------------------------------------------------------

    def _folder(self, folder: Path) -> list[Submission]:
        """A class folder: sub-folders are students, zips are submissions, loose files are grouped."""
        entries = sorted(p for p in folder.iterdir() if not _ignored(p.relative_to(folder)) and not p.name.startswith("."))
        subs: list[Submission] = []
        loose = []
        for entry in entries:
            if entry.is_dir() and entry.suffix == ".ipynb":  # the executor reports it as an invalid notebook
                subs.append(path_submission(entry, notebook=entry))
            elif entry.is_dir():
                subs.append(self.student_folder(entry))
            elif entry.suffix.lower() == ".zip":
                subs += self._zip(entry)
            else:
                loose.append(entry)
        subs += self._loose_files(loose, source=str(folder))
        return subs

    def student_folder(self, folder: Path, canvas: CanvasName | None = None) -> Submission:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not _ignored(p.relative_to(folder)))
        notebooks = [p for p in files if p.suffix == ".ipynb"]
        canvas = (canvas or parse_canvas_name(folder.name)
                  or next((c for c in map(lambda p: parse_canvas_name(p.name), files) if c), None))
        sub = Submission(id=safe_id(f"{canvas.student}_{canvas.user_id}" if canvas else folder.name),
                         source=str(folder))
        if canvas:
            sub.student_name, sub.student_id, sub.late = canvas.student, canvas.user_id, canvas.late
        if not notebooks:
            sub.problem = f"no .ipynb notebook in {folder.name}/ (found: {', '.join(p.name for p in files[:8]) or 'nothing'})"
        else:
            notebooks.sort(key=lambda p: (p.stat().st_mtime, p.name))
            sub.notebook = notebooks[-1]
            if len(notebooks) > 1:
                sub.notes.append(f"{len(notebooks)} notebooks in the folder; graded the newest, {sub.notebook.name}; "
                                 f"not graded: {', '.join(p.name for p in notebooks[:-1])}")
        sub.attachments = [p for p in files if p != sub.notebook][:MAX_ATTACHMENTS]
        return sub

    def _zip(self, path: Path) -> list[Submission]:
        tmp = Path(tempfile.mkdtemp(prefix="qgrader-zip-"))
        self.temp_dirs.append(tmp)
        try:
            safe_extract(path, tmp)
        except (ZipProblem, zipfile.BadZipFile, OSError) as exc:
            return [path_submission(path, problem=f"{path.name}: {exc}")]
        files = [p for p in tmp.rglob("*") if p.is_file() and not _ignored(p.relative_to(tmp))]
        canvas_students = {c.user_id for c in (parse_canvas_name(p.name) for p in files) if c}
        if len(canvas_students) > 1:  # a whole Canvas download
            return self._folder(tmp if len(list(tmp.iterdir())) != 1 or not next(tmp.iterdir()).is_dir()
                                else next(tmp.iterdir()))
        sub = self.student_folder(tmp, canvas=parse_canvas_name(path.name))
        sub.source = str(path)
        if not parse_canvas_name(path.name) and sub.id == safe_id(tmp.name):
            sub.id = safe_id(path.stem)
        return [sub]

    def _loose_files(self, files: list[Path], source: str) -> list[Submission]:
        """Group loose files: Canvas names by student; other notebooks each stand alone."""
        by_student: dict[str, list[tuple[Path, CanvasName]]] = {}
        plain_notebooks, plain_other = [], []
        for f in files:
            c = parse_canvas_name(f.name)
            if c:
                by_student.setdefault(c.user_id or c.student, []).append((f, c))
            elif f.suffix == ".ipynb":
                plain_notebooks.append(f)
            else:
                plain_other.append(f)
        subs = []
        for key, items in sorted(by_student.items()):
            notebooks = sorted(((f, c) for f, c in items if c.filename.endswith(".ipynb") or f.suffix == ".ipynb"),
                               key=lambda fc: fc[1].attachment_id)
            first = items[0][1]
            sub = Submission(id=safe_id(f"{first.student}_{first.user_id}"), source=source,
                             student_name=first.student, student_id=first.user_id)
            if notebooks:
                nb_path, nb_c = notebooks[-1]
                sub.notebook, sub.late, sub.attachment_id = nb_path, nb_c.late, nb_c.attachment_id
                for older, _ in notebooks[:-1]:
                    sub.notes.append(f"also submitted {older.name}; graded the newest, {nb_path.name}")
            else:
                sub.late = any(c.late for _, c in items)
                names = ", ".join(f.name for f, _ in items[:5])
                sub.problem = f"no .ipynb notebook among this student's files ({names})"
            sub.attachments = [f for f, _ in items if f != sub.notebook][:MAX_ATTACHMENTS]
            subs.append(sub)
        for nb in plain_notebooks:
            subs.append(Submission(id=safe_id(nb.stem), source=str(nb), notebook=nb))
        attachable = [f for f in plain_other if f.suffix.lower() in ATTACHMENT_SUFFIXES]
        for f in plain_other:  # a .docx or .py where a notebook belongs: a submission that cannot run
            if f.suffix.lower() not in ATTACHMENT_SUFFIXES:
                subs.append(Submission(id=safe_id(f.stem), source=str(f),
                                       problem=f"{f.name} is not a Jupyter notebook (.ipynb)"))
        if attachable:
            if len(plain_notebooks) == 1 and not by_student:
                next(s for s in subs if s.notebook == plain_notebooks[0]).attachments += attachable[:MAX_ATTACHMENTS]
            else:
                self.notes.append(f"files in {source} that belong to no notebook: "
                                  + ", ".join(f.name for f in attachable[:10]))
        return subs

    # -- ids -----------------------------------------------------------------------------------

    @staticmethod
    def _unique_ids(subs: list[Submission]) -> list[Submission]:
        seen: dict[str, int] = {}
        for sub in subs:
            n = seen.get(sub.id, 0)
            seen[sub.id] = n + 1
            if n:
                sub.id = f"{sub.id}-{n + 1}"
        return subs

    @staticmethod
    def _deduplicate(subs: list[Submission]) -> list[Submission]:
        """Two submissions of one student (e.g. two zips): grade the newest, note the other."""
        by_student: dict[str, list[Submission]] = {}
        for sub in subs:
            if sub.student_id:
                by_student.setdefault(sub.student_id, []).append(sub)
        drop = set()
        for items in by_student.values():
            if len(items) > 1:
                items.sort(key=lambda s: (s.problem is None, s.attachment_id or 0,
                                          s.notebook.stat().st_mtime if s.notebook else 0))
                keep = items[-1]
                for other in items[:-1]:
                    keep.notes.append(f"also submitted {Path(other.source).name}; graded the newest")
                    drop.add(id(other))
                keep.id = safe_id(f"{keep.student_name}_{keep.student_id}")
        return sorted((s for s in subs if id(s) not in drop), key=lambda s: s.id)
