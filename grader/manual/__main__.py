"""python -m grader.manual {review,export,import} DIR ...: manual grading without the `grade` CLI.

review DIR [--host H] [--port N] [--grader NAME]   serve the review pages (reads DIR, writes DIR/manual.json)
export DIR CSV                                     write the grading sheet CSV (reads DIR)
import DIR CSV [--grader NAME]                     import a filled-in sheet into DIR/manual.json, all or nothing,
                                                   then rewrite DIR's grades.csv, grades_detail.csv, index.html
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from grader.manual.csvio import CsvImportError
    from grader.manual.review import default_grader_name, serve
    from grader.manual.store import ManualStoreError
    from grader.manual.verbs import run_export, run_import

    p = argparse.ArgumentParser(prog="python -m grader.manual", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("review", help="grade the manual checks in a browser")
    r.add_argument("out_dir", type=Path)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, default=8000)
    r.add_argument("--grader", default=None, help="your name, recorded with each grade (default: the login name)")
    e = sub.add_parser("export", help="write the manual-grading sheet")
    e.add_argument("out_dir", type=Path)
    e.add_argument("csv", type=Path)
    i = sub.add_parser("import", help="import a filled-in sheet")
    i.add_argument("out_dir", type=Path)
    i.add_argument("csv", type=Path)
    i.add_argument("--grader", default=None)
    args = p.parse_args(argv)
    try:
        if args.cmd == "review":
            serve(args.out_dir, host=args.host, port=args.port, grader_name=args.grader)
        elif args.cmd == "export":
            return run_export(args.out_dir, args.csv)
        else:
            return run_import(args.out_dir, args.csv, args.grader or default_grader_name())
    except (CsvImportError, ManualStoreError, OSError) as exc:  # OSError: no such folder, port in use
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
