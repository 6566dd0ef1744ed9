"""The other ways in: a student's --self-check, Gradescope's container and bundle, and the rubric file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build
from grader.judge.rubric.config import CHECK_IDS, RubricError, load_rubric
from grader.judge.rubric.runner import declared_checks

REPO = Path(__file__).resolve().parents[1]


def _grade(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_self_check_of_a_wrong_site_notebook(tmp_path):
    nb = tmp_path / "mine.ipynb"
    nbformat.write(build("wrong_site_mlp"), str(nb))
    proc = _grade("--self-check", str(nb), env={"PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "✓" in out and "✗" in out
    assert "p3.captures_match" in out and "equals the MLP output of layer 7 (mlp_out)" in out.replace("\n        ", " ")
    assert "Automated checks: 60 of 85 points" in out
    assert "Graded by a TA after you submit:" in out and "p2.diagram (10 points)" in out
    assert "report.html" in out


def test_self_check_passes_a_correct_notebook_and_finds_the_diagram_beside_it(tmp_path):
    nb = tmp_path / "hw.ipynb"
    nbformat.write(build("correct_layer_prehook"), str(nb))
    shutil.copyfile(REPO / "fixtures/submissions/lovelaceada_10001_90002_decoder_diagram.png", tmp_path / "diagram.png")
    proc = _grade("--self-check", str(nb), env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "PASS" in proc.stdout and "FAIL" not in proc.stdout  # plain symbols where the terminal lacks ✓
    assert "Automated checks: 85 of 85 points - all passed." in proc.stdout
    assert "Diagram to review: diagram.png" in proc.stdout


def test_gradescope_bundle_holds_the_scripts_and_the_project(tmp_path):
    path = tmp_path / "autograder.zip"
    proc = _grade("--make-gradescope-bundle", str(path))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        mode = (zf.getinfo("run_autograder").external_attr >> 16) & 0o777
        setup = zf.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "pyproject.toml", "grader/cli.py", "grader/judge/rubric/checks/test_part3_hooks.py",
            "grader/packs/sphere-qwen3/assignment.toml", "grader/spec/pack.py", "miniature/tiny.py",
            "grader/packs/sphere-qwen3/golden/projections.npz", "grader/packs/sphere-smollm2/golden/tokens.json"} <= names
    assert mode & 0o111 and not any("/submissions/" in n or "__pycache__" in n for n in names)
    assert "pip install -q /autograder/source" in setup


def test_gradescope_container_mode_writes_results_json(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    nbformat.write(build("correct_ln_prehook"), str(root / "submission" / "Attention_Head_Dynamics.ipynb"))
    proc = _grade("--gradescope", env={"GRADESCOPE_ROOT": str(root)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 85
    assert [t["name"].split(":")[0] for t in results["tests"]] == list(CHECK_IDS)
    assert all({"name", "score", "max_score", "output", "visibility", "tags"} <= set(t) for t in results["tests"])
    assert all("status" in t for t in results["tests"] if "manual" not in t["tags"])  # a TA check is never "failed"


def test_gradescope_container_mode_always_writes_a_result(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("I could not finish")
    proc = _grade("--gradescope", env={"GRADESCOPE_ROOT": str(root)})
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and results["extra_data"]["status"] == "no_notebook"
    assert proc.returncode == 0


def test_default_rubric_agrees_with_the_points_on_the_checks():
    declared = declared_checks()
    assert list(declared) == sorted(declared) and set(declared) == set(CHECK_IDS)
    rubric = load_rubric()
    assert {cid: e["points"] for cid, e in rubric.items()} == {cid: p for cid, (_, p, _) in declared.items()}
    assert sum(p for _, p, _ in declared.values()) == 100


def test_rubric_overrides_points_and_disables_checks(batch, tmp_path):
    from grader.intake.submission import SubmissionInfo
    from grader.pipeline import conclude
    from grader.settings import Settings

    rubric_file = tmp_path / "rubric.toml"
    rubric_file.write_text('[checks."p3.captures_match"]\npoints = 30\n[checks."p2.diagram"]\nenabled = false\n')
    out = tmp_path / "wrong_site_mlp"
    shutil.copytree(batch / "wrong_site_mlp", out)
    sub = SubmissionInfo.from_json(json.loads((out / "submission.json").read_text()))
    grade = conclude(sub, out, Settings(rubric=rubric_file, report=False))
    by = {c.id: c for c in grade.checks}
    assert "p2.diagram" not in by and by["p3.captures_match"].max_points == 30 and by["p3.captures_match"].points == 0
    assert grade.max_score == 100 - 10 + 15
    original = json.loads((batch / "wrong_site_mlp" / "results.json").read_text())
    assert grade.score == original["score"]  # the failed check's points changed, not the others


@pytest.mark.parametrize("text, message", [
    ('[checks."p9.bogus"]\npoints = 1\n', "unknown check id 'p9.bogus'"),
    ('[checks."p1.model_loaded"]\npoints = -2\n', "must be a number >= 0"),
    ('[checks."p1.model_loaded"]\nweight = 2\n', "may set only 'points' and 'enabled'"),
    ('this is not toml', "is not valid TOML"),
])
def test_bad_rubric_files_are_explained(tmp_path, text, message):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    with pytest.raises(RubricError, match=message):
        load_rubric(path)
    proc = _grade(str(tmp_path), "--rubric", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and message.split("'")[0] in proc.stderr and "Traceback" not in proc.stderr
