"""`grade manual DIR --export F.csv | --import F.csv`: the TA's sheet out and back in, and what each says.

export reads DIR (csvio.export_csv) and writes F.csv. import reads F.csv, writes DIR/manual.json
(csvio.import_csv, all rows or none) and then rewrites DIR/grades.csv, grades_detail.csv and
index.html (grader.report.gradebook.write_class_outputs) with the assignment column and rubric that
`grade` recorded in DIR/grading.json (outdir.grading_record; the defaults, said so, where it is absent
or unreadable), so the gradebook is never stale after an import. Both print one sentence of what was
done; warnings (items still pending, a Canvas column without an id) go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from grader.manual import outdir
from grader.manual.csvio import ExportSummary, ImportCounts, export_csv, import_csv

EXIT_OK, EXIT_NOT_REBUILT = 0, 1


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def export_message(summary: ExportSummary, out_dir: Path, path: Path) -> str:
    """What `--export` did, and what it left out and why."""
    lines = [f"wrote {path}: {_n(summary.rows, 'row')} for {_n(summary.submissions, 'submission')}, "
             f"{summary.blank} still to grade; fill in `points` (and `comment`), then "
             f"grade manual {out_dir} --import {path}"]
    if summary.left_out:
        lines.append(f"left out: {_n(summary.left_out, 'manual item')} of "
                     f"{_n(summary.left_out_submissions, 'submission')} where nothing gradable was submitted "
                     "(no_notebook, invalid_notebook): they are 0 without a TA; to override one, add its row "
                     f"(id, check, points, comment) to the sheet or use grade review {out_dir}")
    if summary.held:
        lines.append(f"{_n(summary.held, 'row')} of {_n(summary.held_submissions, 'submission')} the grader "
                     "failed on (grader_error) stay pending until those submissions are regraded")
    return "\n".join(lines)


def import_message(counts: ImportCounts) -> str:
    return (f"imported {_n(counts.saved, 'manual point')} for {_n(counts.submissions, 'submission')} "
            f"({counts.changed} changed, {counts.new} new); {_n(counts.unchanged, 'row')} unchanged, "
            f"{counts.skipped} with blank points skipped")


def run_export(out_dir: Path, path: Path, log: Callable[[str], None] = print) -> int:
    log(export_message(export_csv(out_dir, path), out_dir, path))
    return EXIT_OK


def run_import(out_dir: Path, path: Path, grader: str, log: Callable[[str], None] = print,
               warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Import the sheet (CsvImportError: nothing written), then rewrite the class outputs; 1 when
    manual.json was updated but the class outputs could not be rewritten (the message says how)."""
    from grader.report.gradebook import write_class_outputs

    log(import_message(import_csv(out_dir, path, grader)))
    record = outdir.grading_record(out_dir)
    try:
        written = write_class_outputs(out_dir, **record.kwargs())
    except (OSError, ValueError) as exc:  # the recorded rubric is gone or no longer valid
        rubric = f" --rubric {record.rubric}" if record.rubric else ""
        warn(f"error: manual.json was updated, but grades.csv, grades_detail.csv and index.html were not "
             f"rewritten ({exc}); fix it, then run grade summarize {out_dir}{rubric}")
        return EXIT_NOT_REBUILT
    log(f"rewrote {written.paths['csv']}, {written.paths['detail']} and {written.paths['index']} with "
        f"{record.source}")
    for warning in written.warnings + ([written.pending_text(out_dir)] if written.pending else []):
        warn(f"warning: {warning}")
    return EXIT_OK
