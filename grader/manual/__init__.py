"""Manual grading of the TA-graded checks (p2.diagram, p5.explanation) of a graded output folder.

Everything here reads the folder `grade ... --out DIR` wrote (each DIR/<id>/ through the typed view
grader.results.Result, plus executed.ipynb, files/ and submitted/) and writes only DIR/manual.json
(and its lock file DIR/.manual.lock), beside the per-submission folders, so regrading never touches
the TA's grades.

    store.py         ManualStore: DIR/manual.json (locked, atomic writes), stale detection
    csvio.py         export_csv / import_csv: a spreadsheet for TAs, imported all-or-nothing
    review.py        create_app / serve: the `grade review DIR` web page (Flask)
    evidence.py      the diagram evidence shown to the TA (files/, images in the executed notebook)
    student_view.py  student_view(): "what the student saw" (DIR/<id>/submitted/) and the real-model panel
    outdir.py        read-only access to DIR (ids, each one's Result, its manual checks, safe file paths)
    sample.py        a small fake graded folder for tests and demos
    __main__.py      python -m grader.manual {review,export,import} DIR ...
"""

from grader.manual.csvio import CsvImportError, export_csv, import_csv
from grader.manual.store import Entry, ManualGradeError, ManualStore, ManualStoreError

__all__ = ["CsvImportError", "Entry", "ManualGradeError", "ManualStore", "ManualStoreError", "export_csv",
           "import_csv"]
