"""The fixture student notebooks and the bundled sample submissions are well formed (no kernels run here).

Executing them is the grader's tests' job; `python -m fixtures.notebooks.run_check` checks each one
behaves as its catalog `expect` says.
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from fixtures.notebooks import CATALOG, FAST, NAMES, SLOW, build, write_all
from fixtures.notebooks.__main__ import main as cli_main
from fixtures.notebooks.catalog import CHECK_IDS, NAME_RE, SITES
from fixtures.notebooks.make_samples import STUDENTS, SUBMISSIONS_DIR, sample_notebooks
from grader.spec.pack import load_pack

LABELS, PROMPT = load_pack().labels, load_pack().prompt

REQUIRED = (
    "correct_layer_prehook", "correct_ln_prehook", "correct_ln_forward_hook_input", "correct_with_kwargs",
    "correct_pca_lowrank", "correct_numpy_eigh", "correct_numpy_svd", "correct_sklearn", "correct_numpy_outputs",
    "correct_stacked_projections", "correct_keys_1_to_36", "correct_bf16", "correct_default_dtype",
    "correct_real_plot", "output_hidden_states", "seed_notebook", "wrong_site_mlp", "wrong_site_attn",
    "wrong_site_layer_output", "wrong_site_ln_output", "missing_layers", "generate_overwrites", "wrong_prompt",
    "chat_template_prompt", "projection_transposed", "no_normalisation", "no_centering", "wrong_components",
    "gif_missing", "gif_skipped_frames", "no_explanation", "no_print_model",
)
EXPECT_KEYS = {"status", "captures_site", "captures_layers", "fails", "gif_frames", "explanation", "why"}
CANVAS_NAME = re.compile(r"^(?P<sortable>[a-z]+)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>[\w.-]+)$")
PROMPT_LINE = f'prompt = "{PROMPT}"'
REAL_PLOT_MARK = "# PLOTTING CODE DO NOT TOUCH BELOW"


def code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_builds_a_valid_v4_notebook(name):
    nb = build(name)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert all(c.cell_type in ("code", "markdown") for c in nb.cells)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert nbformat.writes(build(name)) == nbformat.writes(nb), "building must be deterministic"
    compile(code(nb), f"<{name}>", "exec")  # the student code is valid Python (a cell may still fail at run time)


def test_names_are_unique_safe_and_the_required_ones_exist():
    assert len(NAMES) == len(set(NAMES)) == len(CATALOG)
    assert all(NAME_RE.match(n) for n in NAMES)
    assert set(REQUIRED) <= set(NAMES), sorted(set(REQUIRED) - set(NAMES))
    assert set(FAST) | set(SLOW) == set(NAMES) and not set(FAST) & set(SLOW)


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_is_described_and_has_a_precise_expect(name):
    spec = CATALOG[name]
    assert spec.name == name
    assert spec.description.strip() and spec.description.rstrip().endswith("."), name
    exp = spec.expect
    assert set(exp) == EXPECT_KEYS
    assert exp["status"] in ("ok", "cell_errors")
    assert exp["captures_site"] in SITES or exp["captures_site"] is None
    assert 0 <= exp["captures_layers"] <= 36
    if exp["captures_site"] is None:
        assert exp["captures_layers"] == 0 or name == "generate_overwrites"
    assert exp["fails"] == sorted(set(exp["fails"])) and set(exp["fails"]) <= set(CHECK_IDS)
    assert exp["gif_frames"] is None or 1 <= exp["gif_frames"] <= 36
    assert ("p5.gif" in exp["fails"]) == (exp["gif_frames"] != 36)
    assert ("p3.captures_match" in exp["fails"]) == (exp["captures_site"] != "resid_pre" or exp["captures_layers"] != 36)
    assert "\n" not in exp["why"]
    if name.startswith("correct_"):
        assert exp["fails"] == [] and exp["status"] == "ok" and exp["captures_site"] == "resid_pre"


def test_slow_entries_and_only_they_use_the_real_plotting_code():
    assert {"correct_real_plot", "seed_notebook"} <= set(SLOW)
    labels_line = "labels = " + repr(LABELS)
    for name in NAMES:
        src = code(build(name))
        real = REAL_PLOT_MARK in src and labels_line in src
        assert real == CATALOG[name].slow, name
        if not CATALOG[name].slow and CATALOG[name].expect["gif_frames"] is not None:
            assert 'imageio.mimsave("tokens.gif", images, duration=1.0)' in src and "dpi=40" in src, name
    real = code(build("correct_real_plot"))
    assert "if layer_idx >= 7" not in real and "plt.savefig(fname, dpi=100, bbox_inches=\"tight\")" in real
    assert "if layer_idx >= 7 and layer_idx != 34:" in code(build("seed_notebook"))


def test_notebooks_look_like_submissions():
    for name in NAMES:
        nb = build(name)
        src = code(nb)
        assert 'from_pretrained("Qwen/Qwen3-4B"' in src or '= "Qwen/Qwen3-4B"' in src, name
        if name != "wrong_prompt":
            assert PROMPT_LINE in src, f"{name} must paste the exact prompt as a literal"
        else:
            assert PROMPT_LINE not in src and 'prompt = "The Eiffel Tower' in src
        assert ("print(model)" in src) == (name != "no_print_model"), name
        assert "from reference" not in src and "fixtures" not in src, f"{name}: students don't import the project"
        headers = [c.source for c in nb.cells if c.cell_type == "markdown" and "Part 1" in c.source.splitlines()[0]]
        assert headers, f"{name} has no Part headers"
    stores = {CATALOG[n].variables.get("captures") for n in NAMES}
    assert len(stores) >= 6, "captures dicts should be named differently across students"


def test_seed_notebook_keeps_its_bugs():
    src = code(build("seed_notebook"))
    assert "players = {}" in src and "layers[layer_id] = output" in src
    assert "modules.mlp.register_forward_hook(hooks)" in src
    assert "torch.pca_lowrank(X_centered, q=3)" in src
    assert CATALOG["seed_notebook"].expect["status"] == "cell_errors"


def test_cli_and_write_all(tmp_path):
    paths = write_all(tmp_path / "a", ["correct_layer_prehook", "seed_notebook"])
    assert [p.name for p in paths] == ["correct_layer_prehook.ipynb", "seed_notebook.ipynb"]
    assert cli_main([str(tmp_path / "b"), "wrong_prompt"]) == 0
    nb = nbformat.read(str(tmp_path / "b" / "wrong_prompt.ipynb"), as_version=4)
    nbformat.validate(nb)
    assert cli_main([str(tmp_path / "c"), "--fast"]) == 0
    assert {p.stem for p in (tmp_path / "c").iterdir()} == set(FAST)
    assert cli_main([str(tmp_path / "d"), "no_such_notebook"]) == 2


def test_sample_submissions_are_canvas_named_notebooks_from_the_catalog():
    files = sorted(p for p in SUBMISSIONS_DIR.iterdir() if p.is_file())
    expected = sorted(s.file_name(a) for s in STUDENTS for a in s.attachments)
    assert [p.name for p in files] == expected, "run `python -m fixtures.notebooks.make_samples`"
    students = {}
    for path in files:
        m = CANVAS_NAME.match(path.name)
        assert m, path.name
        students.setdefault(m["user"], set()).add(bool(m["late"]))
    assert len(students) == 6 and all(len(v) == 1 for v in students.values())
    assert sum(late for v in students.values() for late in v) == 1
    notebooks = sample_notebooks()
    assert set(notebooks.values()) == {"correct_real_plot", "seed_notebook", "wrong_site_mlp",
                                       "wrong_site_layer_output", "output_hidden_states", "generate_overwrites"}
    for fname, name in notebooks.items():
        text = (SUBMISSIONS_DIR / fname).read_text()
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") for c in nb.cells), f"{fname}: outputs must be stripped"
        assert text == nbformat.writes(build(name)) + "\n" or text == nbformat.writes(build(name)), (
            f"{fname} differs from catalog {name!r}; run `python -m fixtures.notebooks.make_samples`")
        json.loads(text)


def test_sample_diagram_is_a_small_png():
    pngs = [p for p in SUBMISSIONS_DIR.iterdir() if p.suffix == ".png"]
    assert len(pngs) == 1 and pngs[0].name.startswith("lovelaceada_10001_")
    data = pngs[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100_000
