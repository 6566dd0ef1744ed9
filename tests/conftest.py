"""Shared, session-scoped artifacts: the miniature's HF cache and one reference run on it; and how the suite
is split across pytest-xdist processes (`-n 3 --dist loadscope`, the README's test command)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

CANVAS_FILE = "curiemarie_LATE_777_4242_Assignment.ipynb"
CANVAS_ID = "curiemarie_777"


# The modules whose tests use the session `batch` (the catalog graded once): under xdist they are one scope,
# so that one process grades the catalog once for all of them.
SHARED_BATCH_MODULES = (
    "tests/test_cli_modes.py", "tests/test_grading.py", "tests/test_hostile.py", "tests/test_rejudge.py")


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` with one scope per test module (its module fixtures, graded batches, made once and
    its tests run in file order), except the SHARED_BATCH_MODULES, which form one scope together.
    (xdist's `loadgroup` cannot be used: under pytest 9.2 it no longer renames the node ids it groups by.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared-batch" if module in SHARED_BATCH_MODULES else module

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """A test that uses `batch` outside SHARED_BATCH_MODULES would grade the catalog a second time in
    another process: refuse the run and say where to add it."""
    strays = sorted({item.nodeid.split("::", 1)[0] for item in items if "batch" in item.fixturenames}
                    - set(SHARED_BATCH_MODULES))
    if strays:
        raise pytest.UsageError(f"tests/conftest.py: {', '.join(strays)} use the session `batch` fixture; "
                                "add them to SHARED_BATCH_MODULES")


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
