"""The student self-check kit, for real: build the wheel, install it (and a CPU torch, nothing else of
this project) in a fresh virtual environment, run `grade-check` there on fixture notebooks.

The venv is made once per session in a temporary folder; torch installs while the kit builds, and
the three `grade-check` runs go at once. Without the packages the install needs (no index reachable)
the kit tests are skipped here and fail in CI (CI=true)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import nbformat
import numpy as np
import pytest

HINT = "forward pre-hook on model.model.layers[i]"
RUNS = {  # notebook -> extra grade-check arguments
    "correct_real_plot": [],
    "wrong_site_mlp": [],
    "wrong_prompt": [],
    "correct_sklearn": [],  # sklearn.decomposition.PCA: Colab preinstalls it, so the kit must have it
}


def _missing(what: str, detail: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}: {detail}")
    pytest.skip(f"{what}: {detail}")


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def _dist_name(requirement: str) -> str:
    return re.split(r"[ <>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _clean_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    """(wheel, venv): the kit built by the code under test and installed in a fresh venv."""
    from grader.run.kit import build_kit

    root = tmp_path_factory.mktemp("kit")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = _bin(venv, "python")
    torch_req = f"torch=={version('torch').split('+')[0]}"  # the CPU build this machine has (README)
    torch_install = subprocess.Popen([str(py), "-m", "pip", "install", "-q", torch_req], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=_clean_env({}), cwd=root)
    wheel = build_kit(root / "kit", log=lambda *a: None)
    out, _ = torch_install.communicate(timeout=900)
    if torch_install.returncode != 0:
        _missing(f"pip install {torch_req} in a fresh venv failed", out[-2000:])
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                          env=_clean_env({}), cwd=root, timeout=900)
    if proc.returncode != 0:
        _missing("pip install of the kit's wheel failed", (proc.stdout + proc.stderr)[-2000:])
    return wheel, venv


@pytest.fixture(scope="session")
def kit_runs(kit, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`grade-check NOTEBOOK` in the kit's venv for each of RUNS, all at once; {name: finished process}."""
    from fixtures.notebooks import build

    _, venv = kit
    root = tmp_path_factory.mktemp("kit-runs")
    env = _clean_env({"QWEN_GRADER_CACHE": str(root / "cache"), "PYTHONIOENCODING": "utf-8"})
    procs = {}
    for name, extra in RUNS.items():
        nb = root / name / f"{name}.ipynb"
        nb.parent.mkdir()
        nbformat.write(build(name), str(nb))
        procs[name] = (subprocess.Popen([str(_bin(venv, "grade-check")), str(nb), "--out", str(root / f"out-{name}"),
                                         *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env=env, cwd=root), time.monotonic())
    done = {}
    for name, (p, t0) in procs.items():
        out, _ = p.communicate(timeout=900)
        done[name] = subprocess.CompletedProcess(p.args, p.returncode, out, "")
        done[name].out_dir = root / f"out-{name}" / name
    return done


# ---- what the wheel holds ------------------------------------------------------------------------


def test_the_wheel_has_the_grader_and_frozen_goldens_and_no_solution(kit):
    wheel, _ = kit
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    tops = {n.split("/")[0] for n in names}
    assert {"grader", "miniature"} <= tops
    assert not tops & {"reference", "fixtures", "tests", "bench"}
    assert not [n for n in names if n.startswith("grader/manual/") or n.endswith("dynamics.json")]
    for part in ("execute/executor.py", "judge/rubric/checks/test_part3_hooks.py", "judge/golden.py", "report/render.py",
                 "spec/template.py", "run/selfcheck.py", "report/templates/feedback.html", "packs/sphere-qwen3/assignment.toml", "packs/DEFAULT"):
        assert f"grader/{part}" in names, part
    for dtype in ("float32", "bfloat16", "float16"):
        assert f"grader/judge/frozen/golden-{dtype}.npz" in names
    assert "miniature/tiny.py" in names and "miniature/hf_cache.py" in names
    assert "grader/packs/sphere-qwen3/golden/projections.npz" in names and "grader/packs/sphere-qwen3/golden/tokens.json" in names
    assert "grade-check = grader.run.selfcheck:check_main" in entry_points
    # the wheel requires what the grader's kernels have (pyproject's dependencies, Colab's libraries among
    # them), less the TA tools
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {_dist_name(line.split(":", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert required == {_dist_name(d) for d in project["dependencies"]} - {"flask"}
    assert {"scikit-learn", "scipy", "pandas", "einops"} <= required
    readme = (wheel.parent / "README.md").read_text()
    assert f"pip install {wheel.name}" in readme and "grade-check my_notebook.ipynb --full" in readme
    assert readme.index("pip install torch") < readme.index(f"pip install {wheel.name}")


def test_reference_and_fixtures_are_not_importable_in_the_kit(kit, tmp_path):
    _, venv = kit
    for module in ("reference", "fixtures", "grader.manual"):
        proc = subprocess.run([str(_bin(venv, "python")), "-c", f"import {module}"], capture_output=True, text=True,
                              cwd=tmp_path, env=_clean_env({}))
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module
    proc = subprocess.run([str(_bin(venv, "python")), "-c", "import grader.run.selfcheck, miniature.tiny"],
                          capture_output=True, text=True, cwd=tmp_path, env=_clean_env({}))
    assert proc.returncode == 0, proc.stderr


# ---- grade-check in the kit ----------------------------------------------------------------------


def test_correct_notebook_runs_the_provided_plotting_cell_with_blank_labels_and_passes(kit_runs):
    from grader.spec.template import provided_plotting_cell

    PROVIDED_PLOTTING_CELL = provided_plotting_cell()

    run = kit_runs["correct_real_plot"]
    assert run.returncode == 0, run.stdout[-3000:]
    assert "the frames of tokens.gif are drawn with their 3-D token labels blank" in " ".join(run.stdout.split())
    assert "✓    p5.gif" in run.stdout and "36 frames" in run.stdout  # judged on the GIF this run wrote
    assert "✓    p3.captures_match" in run.stdout and "✗" not in run.stdout and "not run" not in run.stdout
    assert "Automated checks: 85 of 85 points - all passed." in run.stdout
    executed = nbformat.read(run.out_dir / "executed.ipynb", as_version=4)
    assert any(c.source == PROVIDED_PLOTTING_CELL for c in executed.cells)  # ran as the student wrote it
    execution = (run.out_dir / "execution.json").read_text()
    assert '"plot.labels"' in execution
    page = (run.out_dir / "report.html").read_text()  # the student's page, not the TA's report
    assert "Automated checks" in page and "reference, layer" not in page and "Traceback" not in run.stdout


def test_a_scikit_learn_notebook_passes_in_the_kit(kit_runs):
    """The kit's venv has only the wheel and torch: scikit-learn (and Colab's other libraries) come with it."""
    run = kit_runs["correct_sklearn"]
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ModuleNotFoundError" not in run.stdout and "✗" not in run.stdout, run.stdout[-3000:]
    assert "✓    p5.projection_match" in run.stdout and "✓    p1.model_loaded" in run.stdout


def test_wrong_site_names_what_is_wrong_without_the_answer(kit_runs):
    run = kit_runs["wrong_site_mlp"]
    assert run.returncode == 1, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert "✗ p3.captures_match 0/15" in text and "✗ p3.hook_site 0/10" in text
    assert "Your layer 7 capture equals the MLP output of layer 7 (mlp_out), not the residual stream entering " \
           "layer 7 (resid_pre)." in text
    assert "None of them can read the input of layers 0-35. (How to fix it is not shown in the self-check.)" in text
    assert HINT not in text and "It should show the residual stream" not in text
    results = (run.out_dir / "results.json").read_text()
    assert "forward pre-hook on model.model.layers[i]" in results  # the full text stays in results.json


def test_another_prompt_is_explained_not_a_crash(kit_runs):
    """The kit has goldens for the assignment's prompt only; a notebook that ran other tokens is told so."""
    run = kit_runs["wrong_prompt"]
    assert run.returncode == 1, run.stdout[-3000:]
    assert "Traceback" not in run.stdout
    text = " ".join(run.stdout.split())  # the table wraps feedback over lines
    # the judge turns the missing golden into p3's feedback; every other check still runs and reports
    assert "holds the reference activations only for the assignment's 404-token prompt" in text
    assert "p4.prompt_exact" in text and "where the assignment has" in text
    assert "p1.model_loaded" in text and "p5.unit_norm" in text


# ---- the pieces, in this process -----------------------------------------------------------------


def test_the_template_is_the_provided_cell_and_recognised_up_to_cosmetics():
    from fixtures.notebooks import build
    from fixtures.notebooks import cells as C
    from grader.spec.template import is_provided_plotting_cell, provided_plotting_cell

    assert provided_plotting_cell() == C.real_plot("pcas")
    assert is_provided_plotting_cell(C.real_plot("proj"))  # another variable fed to it
    cosmetic = (C.real_plot("all_proj").replace("# PLOTTING CODE DO NOT TOUCH BELOW ===========", "# mine\n\n\n")
                .replace('color="b"', "color='b'").replace("frames = []", "frames = []   # list of files"))
    assert is_provided_plotting_cell(cosmetic)
    assert is_provided_plotting_cell(list(cosmetic.splitlines(keepends=True)))  # nbformat's list form
    assert not is_provided_plotting_cell(C.real_plot("pcas", skip_condition="layer_idx >= 7 and layer_idx != 34"))
    assert not is_provided_plotting_cell(C.light_plot("pcas"))
    assert not is_provided_plotting_cell(C.real_plot("pcas").replace("dpi=100", "dpi=50"))
    assert not is_provided_plotting_cell("%matplotlib inline\n" + C.real_plot("pcas"))
    assert not is_provided_plotting_cell(C.real_plot("pcas") + "\nprint(len(frames))")
    assert [is_provided_plotting_cell(c.source) for c in build("correct_real_plot").cells].count(True) == 1
    assert not any(is_provided_plotting_cell(c.source) for c in build("seed_notebook").cells)  # edited loop


def test_usage_errors_exit_2(tmp_path, capsys):
    from grader.run.selfcheck import check_main

    assert check_main([str(tmp_path / "nope.ipynb")]) == 2
    (tmp_path / "notes.txt").write_text("hello")
    assert check_main([str(tmp_path / "notes.txt")]) == 2
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert check_main([str(tmp_path / "broken.ipynb")]) == 2
    assert check_main([str(tmp_path)]) == 2
    assert check_main([]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "not a Jupyter notebook" in err and "Traceback" not in err


def test_frozen_goldens_round_trip_exactly_and_serve_without_reference(kit, tmp_path, monkeypatch):
    from grader.judge.golden import GoldenStore, GoldenUnavailable, freeze, load_frozen

    store = GoldenStore("tiny")  # the goldens build_kit froze are cached: no recomputation here
    manifest = freeze(store, tmp_path / "frozen", ("float32", "bfloat16"))
    for dtype in ("float32", "bfloat16"):
        golden, frozen = store.get(dtype=dtype), load_frozen(tmp_path / "frozen" / f"golden-{dtype}.npz", dtype)
        assert list(frozen.captures) == list(golden.captures)
        assert all(np.array_equal(frozen.captures[k], golden.captures[k]) for k in golden.captures)
        assert np.array_equal(frozen.projections, golden.projections) and frozen.metrics == golden.metrics
    assert manifest["dtypes"]["float32"]["rebuilt"] > 0  # resid_post / resid_mid are rebuilt, not stored
    monkeypatch.setitem(sys.modules, "reference", None)  # as in the kit
    kit_store = GoldenStore("tiny", cache_dir=tmp_path / "empty-cache")
    kit_store.frozen_dir = tmp_path / "frozen"
    assert kit_store.canonical_ids() == manifest["token_ids"]
    assert kit_store.get(dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(GoldenUnavailable, match="only for the assignment's 404-token prompt"):
        kit_store.get(manifest["token_ids"][:-1])
    with pytest.raises(GoldenUnavailable, match="in float32, bfloat16 only, not in float16"):
        kit_store.get(dtype="float16")  # not frozen here


def test_a_kit_for_the_smollm2_pack_checks_that_assignment(kit, tmp_path):
    """`grade student-kit --assignment sphere-smollm2`: the wheel holds that pack as its DEFAULT, and its
    `grade-check` (unpacked beside the kit venv's torch and transformers) passes a correct SmolLM2 notebook
    and names the wrong site of a mistaken one."""
    from fixtures.notebooks import build
    from fixtures.notebooks.convert import convert
    from grader.run.kit import build_kit
    from grader.spec.pack import load_pack

    _, venv = kit
    wheel = build_kit(tmp_path / "kit", log=lambda *a: None, assignment="sphere-smollm2")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read("grader/packs/DEFAULT").decode().strip() == "sphere-smollm2"
    assert "grader/packs/sphere-smollm2/assignment.toml" in names
    assert "grader/packs/sphere-smollm2/golden/projections.npz" in names
    site = tmp_path / "site"
    subprocess.run([str(_bin(venv, "python")), "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, env=_clean_env({}), timeout=600)
    pack = load_pack("sphere-smollm2")
    env = _clean_env({"PYTHONPATH": str(site), "QWEN_GRADER_CACHE": str(tmp_path / "cache"),
                      "PYTHONIOENCODING": "utf-8"})
    procs = {}
    for name in ("correct_layer_prehook", "wrong_site_mlp"):
        nb = tmp_path / name / f"{name}.ipynb"
        nb.parent.mkdir()
        nbformat.write(convert(build(name), pack), str(nb))
        procs[name] = subprocess.Popen([str(_bin(venv, "python")), "-c",
                                        "from grader.run.selfcheck import check_main; raise SystemExit(check_main())",
                                        str(nb), "--out", str(tmp_path / f"out-{name}")],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                       cwd=tmp_path)
    outs = {name: p.communicate(timeout=900)[0] for name, p in procs.items()}
    good, bad = (" ".join(outs[n].split()) for n in ("correct_layer_prehook", "wrong_site_mlp"))
    assert procs["correct_layer_prehook"].returncode == 0, good[-3000:]
    assert "Automated checks: 85 of 85 points - all passed." in good and "✗" not in good, good[-3000:]
    assert procs["wrong_site_mlp"].returncode == 1, bad[-3000:]
    assert "✗ p3.captures_match 0/15" in bad and "(mlp_out), not the residual stream entering layer 7" in bad, bad[-3000:]
    assert "layers 0-29" in bad, bad[-3000:]  # SmolLM2's 30 layers, not Qwen3's 36
