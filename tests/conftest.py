"""Shared, session-scoped artifacts: the miniature's HF cache and one reference run on it; and how the suite
is split across pytest-xdist processes (`-n 3 --dist loadgroup`, the README's test command)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

CANVAS_FILE = "curiemarie_LATE_777_4242_Assignment.ipynb"
CANVAS_ID = "curiemarie_777"


def pytest_collection_modifyitems(config, items):
    """Under xdist's loadgroup, each session fixture is made in one process only: every test that uses the
    catalog `batch` (any module) runs in one group, every other test with the rest of its module (whose
    session fixtures, a graded batch each, are the module's own)."""
    for item in items:
        group = "batch" if "batch" in item.fixturenames else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory) -> Path:
    """A fresh offline HF cache with the miniature, built by the code under test."""
    from miniature.hf_cache import ensure_hf_home

    return ensure_hf_home(tmp_path_factory.mktemp("hf") / "home")


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory) -> Path:
    """`python -m reference --model tiny` output (without the slow GIF)."""
    from reference.run import ReferenceConfig, run_reference

    out = tmp_path_factory.mktemp("reference")
    run_reference(ReferenceConfig(out=out, gif=False), log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def captures(reference_dir) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "captures.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def batch(tmp_path_factory) -> Path:
    """`grade` once on every catalog notebook (fixtures/notebooks) plus the submission forms it must
    accept (a Canvas-named file with its diagram, a zip, a per-student folder); 2 workers.
    Returns the --out folder. Used by test_grading.py and, as the baseline, by test_hostile.py.
    Without HTML reports, which tests/test_report.py covers."""
    from fixtures.notebooks import FAST, SLOW, build, write_all
    from grader.cli import main

    src = tmp_path_factory.mktemp("catalog")
    write_all(src, list(FAST) + list(SLOW))
    nbformat.write(build("correct_ln_prehook"), str(src / CANVAS_FILE))
    shutil.copyfile(Path(__file__).resolve().parents[1] / "fixtures/submissions/lovelaceada_10001_90002_decoder_diagram.png",
                    src / "curiemarie_777_4243_decoder_diagram.png")
    with zipfile.ZipFile(src / "zipped_student.zip", "w") as zf:
        zf.writestr("zipped_student/homework.ipynb", nbformat.writes(build("correct_numpy_svd")))
    folder = src / "folder_student"
    folder.mkdir()
    nbformat.write(build("correct_sklearn"), str(folder / "hw.ipynb"))
    (folder / "my_diagram.jpg").write_bytes(b"\xff\xd8\xff\xe0 not much of a jpeg")
    out = tmp_path_factory.mktemp("graded") / "grading"
    assert main([str(src), "--out", str(out), "--workers", "2", "--no-report"]) == 0  # reports: test_report.py
    return out
