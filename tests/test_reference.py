"""The reference pipeline: artifacts, cross-checks, manifest, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from grader.spec.pack import load_pack

NUM_LAYERS, NUM_TOKENS = load_pack().n_layers, load_pack().n_tokens
from grader.spec.sites import SITE_NAMES


def test_captures_hold_every_site_of_every_layer(captures):
    assert set(captures) == {f"{s}.{n}" for s in SITE_NAMES for n in range(NUM_LAYERS)}
    for key, arr in captures.items():
        assert arr.shape == (NUM_TOKENS, 64) and arr.dtype == np.float32, key


def test_sites_are_wired_as_a_qwen3_decoder_layer(captures):
    for n in range(NUM_LAYERS):
        np.testing.assert_allclose(captures[f"resid_mid.{n}"], captures[f"resid_pre.{n}"] + captures[f"attn_out.{n}"],
                                   atol=1e-5)
        np.testing.assert_allclose(captures[f"resid_post.{n}"], captures[f"resid_mid.{n}"] + captures[f"mlp_out.{n}"],
                                   atol=1e-5)
        rms = np.sqrt(np.mean(captures[f"ln1_out.{n}"] ** 2, axis=1))
        np.testing.assert_allclose(rms, 1.0, atol=1e-3)  # RMSNorm with unit weight


def test_manifest_describes_the_run(reference_dir):
    manifest = json.loads((reference_dir / "manifest.json").read_text())
    assert manifest["model_id"] == "Qwen/Qwen3-4B (miniature)" and manifest["is_miniature"]
    assert len(manifest["revision"]) == 40
    assert manifest["num_tokens"] == NUM_TOKENS == len(manifest["token_ids"])
    assert manifest["token_ids"][:4] == [785, 468, 3092, 301]
    assert manifest["config"]["num_hidden_layers"] == NUM_LAYERS
    assert set(manifest["versions"]) >= {"torch", "transformers", "numpy"}
    import hashlib

    for name, digest in manifest["files"].items():
        assert hashlib.sha256((reference_dir / name).read_bytes()).hexdigest() == digest, name
    metrics = json.loads((reference_dir / "metrics.json").read_text())["layers"]
    assert len(metrics) == NUM_LAYERS and metrics[0]["mean_angle_moved_deg"] is None
    assert all(m["mean_angle_moved_deg"] > 0 for m in metrics[1:])
    assert all(len(m["singular_values_top5"]) == 5 for m in metrics)


def test_cross_check_fails_loudly_when_the_wiring_differs():
    """A layer whose output is not resid_mid + mlp_out must not produce a golden."""
    from reference.capture import CaptureConsistencyError, capture_all_sites
    from reference.model import load
    from reference.run import tokenize

    loaded = load("tiny")
    layer = loaded.layers[3]
    original = type(layer).forward

    def doubled(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        return out * 2 if self is layer else out

    try:
        type(layer).forward = doubled
        with pytest.raises(CaptureConsistencyError, match="resid_post.3"):
            capture_all_sites(loaded.model, tokenize(loaded.tokenizer))
    finally:
        type(layer).forward = original


def test_full_run_writes_gif_and_diagram(tmp_path):
    from PIL import Image

    proc = subprocess.run([sys.executable, "-m", "reference", "--model", "tiny", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"to {tmp_path}" in proc.stdout
    with Image.open(tmp_path / "tokens.gif") as gif:
        assert gif.n_frames == NUM_LAYERS
    with Image.open(tmp_path / "decoder_layer.png") as png:
        assert png.width > 500 and png.height > 500
    assert not list(tmp_path.glob("frame_*.png")), "frame files are cleaned up"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"captures.npz", "projections.npz", "tokens.gif", "decoder_layer.png", "metrics.json"}


def _cli(args, env=None):
    return subprocess.run([sys.executable, "-m", "reference", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_unknown_model_offline_names_the_id_and_hf_home(tmp_path):
    proc = _cli(["--model", "nobody/no-such-model", "--out", str(tmp_path / "o")],
                env={"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "nobody/no-such-model" in proc.stderr and str(tmp_path / "empty") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_model_without_qwen3_layer_modules_lists_what_it_found(tmp_path, hf_home):
    from transformers import PhiConfig, PhiForCausalLM

    from miniature.hf_cache import snapshot_dir, tokenizer_files

    folder = tmp_path / "phi"
    cfg = PhiConfig(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2)
    PhiForCausalLM(cfg).save_pretrained(folder)
    for name in tokenizer_files():
        shutil.copyfile(snapshot_dir(hf_home) / name, folder / name)
    proc = _cli(["--model", str(folder), "--out", str(tmp_path / "o")])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "post_attention_layernorm" in proc.stderr and "PhiDecoderLayer" in proc.stderr
    assert "resid_dropout" in proc.stderr  # what it found
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_clear_error(tmp_path):
    proc = _cli(["--model", "tiny", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "--device cpu" in proc.stderr
    assert "Traceback" not in proc.stderr
