"""The miniature: Qwen3-4B's structure, the real tokenizer, deterministic bytes, and a spectrum
engineered so that the golden PCA is well defined and the tokens visibly move."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from miniature import tiny
from grader.spec.pack import load_pack
from grader.spec.geometry import align_signs, pca3, token_angles

# sha256 of the miniature's model.safetensors. If numpy's PCG64 stream, the draw order or the
# bf16 rounding changed, this changes, and so would every golden number: bump GENERATOR_VERSION.
PACK = load_pack()
LABELS, NUM_LAYERS, PROMPT = PACK.labels, PACK.n_layers, PACK.prompt
PINNED_WEIGHTS_SHA256 = "9c15322b42255a29495adbce3c8b40f89a09a3422bc86bfcbc8028e7f7ee3cdf"


def _snapshot(hf_home):
    from miniature.hf_cache import snapshot_dir

    return snapshot_dir(hf_home)


def test_config_matches_qwen3_4b_except_widths(hf_home):
    import json

    cfg = json.loads((_snapshot(hf_home) / "config.json").read_text())
    widths = {"hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"}
    for key, value in PACK.model_config.items():
        if key not in widths:
            assert cfg[key] == value, f"config.json {key}: expected Qwen3-4B's {value!r}, found {cfg[key]!r}"
    assert cfg["hidden_size"] <= 64
    assert cfg["num_hidden_layers"] == NUM_LAYERS and cfg["vocab_size"] == 151936
    assert cfg["rope_theta"] == 1000000 and cfg["rms_norm_eps"] == 1e-6 and cfg["torch_dtype"] == "bfloat16"


def test_module_tree_matches_qwen3_4b(hf_home):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(_snapshot(hf_home)), dtype=torch.float32)
    names = dict(model.named_modules())
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert len(model.model.layers) == NUM_LAYERS
    expected = {
        "input_layernorm": "Qwen3RMSNorm", "post_attention_layernorm": "Qwen3RMSNorm",
        "self_attn": "Qwen3Attention", "self_attn.q_proj": "Linear", "self_attn.k_proj": "Linear",
        "self_attn.v_proj": "Linear", "self_attn.o_proj": "Linear", "self_attn.q_norm": "Qwen3RMSNorm",
        "self_attn.k_norm": "Qwen3RMSNorm", "mlp": "Qwen3MLP", "mlp.gate_proj": "Linear",
        "mlp.up_proj": "Linear", "mlp.down_proj": "Linear",
    }
    for n in (0, 17, 35):
        for rel, cls in expected.items():
            path = f"model.layers.{n}.{rel}"
            assert type(names[path]).__name__ == cls, f"{path}: expected {cls}, found {type(names[path]).__name__}"
    assert type(names["model.norm"]).__name__ == "Qwen3RMSNorm"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "embeddings must be tied"


def test_prompt_tokenizes_to_the_404_labels_of_the_plotting_code(hf_home):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_snapshot(hf_home)))
    ids = tok(PROMPT)["input_ids"]
    assert len(ids) == 404
    assert [tok.decode([i]) for i in ids] == LABELS


def test_weights_are_deterministic():
    a, b = tiny.generate_weights(), tiny.generate_weights()
    assert list(a) == list(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    from dataclasses import replace

    from miniature.engineered import draw_weights

    other = draw_weights(PACK.family, tiny.config_dict(), replace(tiny.engineering(), seed=3))
    assert not np.array_equal(a["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_weights_are_the_same_bytes_everywhere(hf_home):
    digest = hashlib.sha256((_snapshot(hf_home) / "model.safetensors").read_bytes()).hexdigest()
    assert digest == PINNED_WEIGHTS_SHA256, (
        f"model.safetensors changed (sha256 {digest}); if intended, bump tiny.GENERATOR_VERSION, "
        "regenerate the pack's golden/ (python -m reference.make_golden) and update PINNED_WEIGHTS_SHA256"
    )


def _resid(captures, n):
    return captures[f"resid_pre.{n}"]


def test_top3_singular_values_are_separated_at_every_layer(captures):
    worst = {"S1/S2": np.inf, "S2/S3": np.inf, "S3/S4": np.inf}
    for n in range(NUM_LAYERS):
        s = pca3(_resid(captures, n)).singular_values
        worst["S1/S2"] = min(worst["S1/S2"], s[0] / s[1])
        worst["S2/S3"] = min(worst["S2/S3"], s[1] / s[2])
        worst["S3/S4"] = min(worst["S3/S4"], s[2] / s[3])
    print("worst ratios over layers:", {k: round(v, 2) for k, v in worst.items()})
    assert worst["S1/S2"] >= 1.2 and worst["S2/S3"] >= 1.2 and worst["S3/S4"] >= 3, worst


def test_pca_lowrank_agrees_with_exact_pca_for_20_seeds(captures):
    worst_median, worst_p95 = 0.0, 0.0
    for n in range(NUM_LAYERS):
        x = torch.from_numpy(_resid(captures, n))  # [N, d] float32
        exact = pca3(x.numpy()).sphere  # [3, N]
        for seed in range(20):
            torch.manual_seed(seed)
            _, _, v = torch.pca_lowrank(x, q=3)  # default niter, centres internally
            approx = ((x - x.mean(0)) @ v).T.numpy()  # [3, N]
            aligned, _ = align_signs(exact, approx)
            angles = token_angles(exact, aligned)
            worst_median = max(worst_median, float(np.median(angles)))
            worst_p95 = max(worst_p95, float(np.percentile(angles, 95)))
    print(f"pca_lowrank vs exact, worst over 36 layers x 20 seeds: median {worst_median:.4f} deg, p95 {worst_p95:.4f} deg")
    assert worst_median < 0.5 and worst_p95 < 2.0


def test_tokens_move_on_the_sphere_from_first_to_last_layer(reference_dir):
    with np.load(reference_dir / "projections.npz") as z:
        first, last = z["0"], z[str(NUM_LAYERS - 1)]
    aligned, _ = align_signs(first, last)
    moved = float(np.median(token_angles(first, aligned)))
    print(f"median angle moved from layer 0 to layer 35: {moved:.1f} deg")
    assert moved >= 20.0
