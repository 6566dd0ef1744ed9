"""Gradescope: the autograder zip, and grading inside Gradescope's container.

`grade gradescope-bundle autograder.zip` writes the zip Gradescope's "Configure Autograder"
page takes: setup.sh (installs a CPU torch and this project), run_autograder (calls
`grade gradescope-run`), and this project's source. In the container, `grade gradescope-run` grades
/autograder/submission (one student's upload: the notebook plus attachments such as the diagram)
on the miniature model and writes /autograder/results/results.json in Gradescope's schema.
A failure of any kind still writes a results.json that says what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
import zipfile
from pathlib import Path

from grader.io import SubmissionDir
from grader.settings import Settings
from grader.status import Status

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (grader/run/gradescope.py)
BUNDLED = ("pyproject.toml", "README.md", "grader", "reference", "miniature", "fixtures")
SKIP_PARTS = {"__pycache__", "submissions", ".pytest_cache"}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when the autograder image is built (base image: Ubuntu 22.04 or newer).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup.sh: this autograder needs Python 3.11 or newer; the image has $(python3 --version 2>&1)." >&2
  echo "setup.sh: choose the Ubuntu 24.04 base image in Gradescope's autograder settings." >&2
  exit 1
fi
python3 -m venv /autograder/venv
. /autograder/venv/bin/activate
pip install -q --upgrade pip
pip install -q torch --index-url https://download.pytorch.org/whl/cpu
pip install -q /autograder/source
python -m miniature.hf_cache  # build the default pack's miniature once, at image build time
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission.
. /autograder/venv/bin/activate
cd /autograder/source
grade gradescope-run --workers 1
"""


def make_bundle(path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            zf.writestr(info, text)
        for entry in BUNDLED:
            src = SOURCE_ROOT / entry
            files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for f in files:
                rel = f.relative_to(SOURCE_ROOT)
                if not SKIP_PARTS.intersection(rel.parts) and f.suffix != ".pyc":
                    zf.write(f, str(rel))
    return path


def _failure_results(reason: str) -> dict:
    return {"score": 0, "output": f"The autograder could not grade this submission: {reason}. "
                                   "Your instructor has been told; please contact them.",
            "tests": [], "extra_data": {"status": Status.GRADER_ERROR, "reason": reason}}


def run_in_container(settings: Settings) -> int:
    from grader.intake.discovery import Discovery
    from grader.pipeline import grade_one

    root = Path(os.environ.get("GRADESCOPE_ROOT", "/autograder"))
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    out_root = Path(tempfile.mkdtemp(prefix="grade-gradescope-"))
    try:
        settings.model, settings.workers = "tiny", 1
        sub = Discovery().student_folder(root / "submission")  # one student's upload
        sub.id = "submission"
        out_dir = out_root / sub.id
        grade_one(sub, out_dir, settings, settings.execute_config(hide=[out_root], log=lambda *_: None))
        shutil.copyfile(SubmissionDir(out_dir).results, results_path)
        return 0
    except Exception as exc:  # noqa: BLE001 - Gradescope must always get a results.json
        results_path.write_text(json.dumps(_failure_results(f"{exc.__class__.__name__}: {exc}")) + "\n")
        traceback.print_exc()
        return 1
    finally:
        shutil.rmtree(out_root, ignore_errors=True)
