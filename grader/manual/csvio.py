"""Manual grades as a spreadsheet: export a CSV for TAs to fill in, import it back.

export_csv reads each submission's graded result (grader.results.Result via outdir.result: the
student's name, the manual checks and their max points, the status) and DIR/manual.json, and writes
one CSV with the columns `id, student, check, max_points, points, comment`: one row per graded
submission and manual check, `points` blank where no TA has graded it yet. Checks worth 0 without a
TA (grader.report.totals.manual_rule: nothing gradable was submitted) are left out unless a TA has
recorded points for them; the returned ExportSummary counts them, and the rows of submissions the
grader failed on (pending until they are regraded), for the message the verb prints.

import_csv reads such a CSV and writes DIR/manual.json (through ManualStore) only if every row is
valid: all rows are checked first (missing columns, unknown id, unknown or automated check,
non-numeric points, points outside 0..max, the same id and check twice) and any problem raises
CsvImportError listing every bad row (line number, the row, what was expected, what was found)
with manual.json left byte-identical. A row with blank points is skipped. Otherwise all rows are
written in one locked transaction. `student` and `max_points` are informational and not read back.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from grader.manual import outdir
from grader.manual.store import MAX_COMMENT, ManualGradeError, ManualStore, parse_points
from grader.report.totals import manual_mark
from grader.results import Result
from grader.errors import UsageError

COLUMNS = ("id", "student", "check", "max_points", "points", "comment")
REQUIRED = ("id", "check", "points", "comment")


@dataclass(frozen=True)
class RowProblem:
    line: int  # 1-based line of the file where the row starts (line 1 is the header)
    row: str  # the row as read
    expected: str
    found: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.row}\n    expected {self.expected}; found {self.found}"


class CsvImportError(UsageError, ValueError):
    """The CSV was refused; `problems` lists every bad row. Nothing was written."""

    def __init__(self, path: Path | str, problems: list[RowProblem]):
        self.path, self.problems = Path(path), list(problems)
        n = len(self.problems)
        head = f"{self.path}: {n} problem{'s' if n != 1 else ''}; nothing was imported (manual.json is unchanged)"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class ExportSummary:
    """What export_csv wrote, and what it left out."""

    rows: int = 0  # rows written: one per submission and manual check
    blank: int = 0  # ... of them with blank points (no TA's points yet)
    submissions: int = 0  # submissions with a row
    left_out: int = 0  # checks worth 0 without a TA (nothing gradable was submitted): not in the sheet
    left_out_submissions: int = 0
    held: int = 0  # rows of submissions the grader failed on: pending until they are regraded
    held_submissions: int = 0


def export_csv(out_dir: Path | str, path: Path | str) -> ExportSummary:
    """Write the manual-grading sheet of DIR to `path`; returns what was written and left out."""
    out_dir = Path(out_dir)
    snapshot = ManualStore(out_dir).snapshot()
    counts = dict.fromkeys(("rows", "blank", "left_out", "held"), 0)
    with_rows, left_out, held = set(), set(), set()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for sid in outdir.submission_ids(out_dir):
        res = outdir.result(out_dir, sid)
        student = outdir.student_name(res)
        entries = snapshot.get(sid, {})
        for check in outdir.manual_checks(res).values():
            e, mark = entries.get(check.id), manual_mark(check, entries.get(check.id), res)
            if mark.automatic and e is None:  # 0 without a TA; a TA overrides it by adding the row
                counts["left_out"] += 1
                left_out.add(sid)
                continue
            writer.writerow([sid, student, check.id, _fmt(check.max_points),
                             _fmt(e.points) if e else "", e.comment if e else ""])
            counts["rows"] += 1
            counts["blank"] += e is None
            with_rows.add(sid)
            if mark.held:
                counts["held"] += 1
                held.add(sid)
    Path(path).write_text(buf.getvalue(), encoding="utf-8")
    return ExportSummary(submissions=len(with_rows), left_out_submissions=len(left_out),
                         held_submissions=len(held), **counts)


def _show(fields: list[str]) -> str:
    """A row as the TA wrote it, on one line (newlines inside a field shown as \\n)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _read(path: Path) -> list[tuple[int, list[str]]]:
    """(start line, fields) of every row of the file, the header first."""
    text = path.read_text(encoding="utf-8-sig")  # a BOM from Excel is fine
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, end = [], 0
    for fields in reader:
        rows.append((end + 1, fields))
        end = reader.line_num
    return rows


def validate_csv(out_dir: Path | str, path: Path | str) -> tuple[list[tuple[str, str, float, str]], int, list[RowProblem]]:
    """Check every row; returns (grades to write as (id, check, points, comment), rows skipped for
    blank points, problems)."""
    out_dir, path = Path(out_dir), Path(path)
    try:
        rows = _read(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [], 0, [RowProblem(1, str(path), "a readable UTF-8 CSV file", f"{exc.__class__.__name__}: {exc}")]
    if not rows:
        return [], 0, [RowProblem(1, "", "a header row: " + ",".join(COLUMNS), "an empty file")]
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    doubled = sorted({n for n in names if n and names.count(n) > 1})
    if missing or doubled:
        found = (f"missing column(s) {', '.join(missing)}" if missing else "") + \
                ("; " if missing and doubled else "") + (f"repeated column(s) {', '.join(doubled)}" if doubled else "")
        return [], 0, [RowProblem(header_line, _show(header), "the header " + ",".join(COLUMNS), found)]
    col = {n: i for i, n in enumerate(names)}
    ids = set(outdir.submission_ids(out_dir))
    results_of: dict[str, Result] = {}
    problems: list[RowProblem] = []
    grades: list[tuple[str, str, float, str]] = []
    seen: dict[tuple[str, str], int] = {}
    skipped = 0
    for line, fields in rows[1:]:
        shown = _show(fields)
        if not any(f.strip() for f in fields):
            continue  # an empty line (spreadsheets add them at the end)
        if len(fields) != len(header):
            problems.append(RowProblem(line, shown, f"{len(header)} fields ({','.join(header)})",
                                       f"{len(fields)} field{'s' if len(fields) != 1 else ''}"))
            continue
        sid, check = fields[col["id"]].strip(), fields[col["check"]].strip()
        raw_points, comment = fields[col["points"]].strip(), fields[col["comment"]]
        if not raw_points:
            skipped += 1
            continue
        bad = []
        if sid not in ids:
            bad.append(("a submission id of this folder (one of its sub-folders with results.json)",
                        f"id {sid!r}" if sid else "an empty id"))
        else:
            if sid not in results_of:
                results_of[sid] = outdir.result(out_dir, sid)
            res = results_of[sid]
            manual = outdir.manual_checks(res)
            if check not in manual:
                what = "an automated check" if check in outdir.all_check_ids(res) else "an unknown check"
                bad.append((f"a manual check ({', '.join(manual) or 'none'})",
                            f"{what} {check!r}" if check else "an empty check"))
            else:
                try:
                    value = parse_points(raw_points)
                except ManualGradeError:
                    bad.append((f"points: a number from 0 to {_fmt(manual[check].max_points)}",
                                f"{raw_points!r}"))
                else:
                    top = manual[check].max_points
                    if not 0 <= value <= top:
                        bad.append((f"points for {check}: a number from 0 to {_fmt(top)}", f"{raw_points}"))
                    elif len(comment) > MAX_COMMENT:
                        bad.append((f"a comment of at most {MAX_COMMENT} characters", f"{len(comment)} characters"))
                    else:
                        key = (sid, check)
                        if key in seen:
                            bad.append((f"one row for {sid} {check}", f"a second row (the first is on line {seen[key]})"))
                        else:
                            seen[key] = line
                            grades.append((sid, check, value, comment))
        problems += [RowProblem(line, shown, expected, found) for expected, found in bad]
    return grades, skipped, problems


@dataclass(frozen=True)
class ImportCounts:
    """What import_csv did with the sheet's rows."""

    rows: int = 0  # data rows read
    saved: int = 0  # entries written to manual.json (= changed + new)
    changed: int = 0  # ... replacing a TA's earlier entry
    new: int = 0  # ... where there was none
    submissions: int = 0  # submissions with an entry written
    unchanged: int = 0  # rows equal to what manual.json had
    skipped: int = 0  # rows with blank points


def import_csv(out_dir: Path | str, path: Path | str, grader_name: str) -> ImportCounts:
    """Import a filled-in sheet into DIR/manual.json, all rows or none. Raises CsvImportError (a
    ValueError) listing every bad row, having written nothing."""
    grades, skipped, problems = validate_csv(out_dir, path)
    if problems:
        raise CsvImportError(path, problems)
    store = ManualStore(out_dir)
    before = store.snapshot()
    try:
        written = store.set_many(grades, grader_name)
    except ManualGradeError as exc:  # the folder changed between validation and writing
        raise CsvImportError(path, [RowProblem(0, "", "a valid grade", str(exc))]) from None
    changed = sum(e.check in before.get(e.sid, {}) for e in written)
    return ImportCounts(rows=len(grades) + skipped, saved=len(written), changed=changed, new=len(written) - changed,
                        submissions=len({e.sid for e in written}), unchanged=len(grades) - len(written),
                        skipped=skipped)
