"""Similar submissions for the instructor: which pairs share their own code or their answer, and a
side-by-side page per pair.

Reads out/<id>/submitted/notebook.ipynb (the notebook as submitted; executed.ipynb when that is
missing) and each Result's answer; writes out/similar/<a>__<b>.html. The fingerprints are
grader/report/similarity.py's (provided code removed, robust to renamed variables and reordered cells).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from grader.io import SubmissionDir, write_atomic
from grader.report import similarity
from grader.report.render import render
from grader.results import Result


def _notebook(out_dir: Path):
    for path in (out_dir / "submitted" / "notebook.ipynb", SubmissionDir(out_dir).executed):
        try:
            return nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - missing or unreadable: try the next, else nothing to compare
            continue
    return None


def similar_map(out_root: Path, results: list[Result], pack=None) -> dict[str, list[str]]:
    """{id: ids it is similar to}; also (re)writes the side-by-side pages under out_root/similar/."""
    notebooks = {r.id: nb for r in results if (nb := _notebook(out_root / r.id)) is not None}
    answers = {r.id: r.summary.answer for r in results}
    fps = {sid: similarity.fingerprint(nb, answers.get(sid), pack) for sid, nb in notebooks.items()}
    pairs = similarity.similar_pairs(fps)
    folder = out_root / "similar"
    shutil.rmtree(folder, ignore_errors=True)
    found: dict[str, list[str]] = {}
    for pair in pairs:
        found.setdefault(pair.a, []).append(pair.b)
        found.setdefault(pair.b, []).append(pair.a)
        cells = similarity.side_by_side(notebooks[pair.a], notebooks[pair.b], pack)
        page = render("similar.html", {"pair": pair, "cells": cells, "answer_a": answers.get(pair.a),
                                       "answer_b": answers.get(pair.b)})
        write_atomic(folder / f"{pair.a}__{pair.b}.html", page)
    return found
