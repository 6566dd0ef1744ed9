"""Unmodified student loading code gets the miniature from the offline cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from miniature.hf_cache import offline_env

LOADS = textwrap.dedent(
    """
    import json, sys, torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForCausalLM
    from grader.spec.pack import load_pack

    PROMPT = load_pack().prompt
    tok = AutoTokenizer.from_pretrained("Qwen/Qwen3-4B")
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    calls = {
        "auto_float32": lambda: AutoModelForCausalLM.from_pretrained("Qwen/Qwen3-4B", dtype=torch.float32),
        "auto_default": lambda: AutoModelForCausalLM.from_pretrained("Qwen/Qwen3-4B"),
        "auto_torch_dtype_kwarg": lambda: AutoModelForCausalLM.from_pretrained("Qwen/Qwen3-4B", torch_dtype=torch.float32),
        "auto_device_map_auto": lambda: AutoModelForCausalLM.from_pretrained("Qwen/Qwen3-4B", dtype=torch.float32, device_map="auto"),
        "qwen3_class": lambda: Qwen3ForCausalLM.from_pretrained("Qwen/Qwen3-4B", dtype=torch.float32),
        "qwen3_class_device_map_cpu": lambda: Qwen3ForCausalLM.from_pretrained("Qwen/Qwen3-4B", device_map="cpu"),
    }
    out = {"n_tokens": ids.shape[1]}
    for name, call in calls.items():
        model = call()
        with torch.no_grad():
            h0 = model(ids, output_hidden_states=True).hidden_states[5][0].float()
        out[name] = {"class": type(model).__name__, "dtype": str(model.dtype), "layers": len(model.model.layers),
                     "name_or_path": model.config._name_or_path, "h5_first_row": h0[0].tolist()}
    print("RESULT" + json.dumps(out))
    """
)


def test_student_loading_calls_get_the_miniature(hf_home, captures, tmp_path):
    env = {**os.environ, **offline_env(hf_home)}
    proc = subprocess.run([sys.executable, "-c", LOADS], env=env, capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result.pop("n_tokens") == 404
    golden_row = captures["resid_pre.5"][0]
    for name, info in result.items():
        assert info["class"] == "Qwen3ForCausalLM" and info["layers"] == 36, (name, info)
        assert info["name_or_path"] == "Qwen/Qwen3-4B", (name, info)
        expected_dtype = "torch.bfloat16" if name in ("auto_default", "qwen3_class_device_map_cpu") else "torch.float32"
        assert info["dtype"] == expected_dtype, f"{name}: dtype {info['dtype']}, expected {expected_dtype} (config says bfloat16)"
        tol = 1e-5 if expected_dtype == "torch.float32" else 0.15 * np.abs(golden_row).max()
        assert np.allclose(info["h5_first_row"], golden_row, atol=tol), name


def test_cli_lays_out_a_cache_and_prints_the_environment(tmp_path):
    target = tmp_path / "hf"
    proc = subprocess.run([sys.executable, "-m", "miniature.hf_cache", str(target)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"export HF_HOME={target.resolve()}" in proc.stdout
    assert "export HF_HUB_OFFLINE=1" in proc.stdout
    repo = target / "hub" / "models--Qwen--Qwen3-4B"
    rev = (repo / "refs" / "main").read_text()
    snap = repo / "snapshots" / rev
    assert sorted(p.name for p in snap.iterdir()) == sorted(
        ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "vocab.json", "merges.txt"])
    assert all((snap / p).resolve().parent == repo / "blobs" for p in os.listdir(snap))
    # a second call reuses the complete cache
    before = (snap / "model.safetensors").resolve().stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "miniature.hf_cache", str(target)], capture_output=True, text=True)
    assert proc.returncode == 0 and (snap / "model.safetensors").resolve().stat().st_mtime_ns == before
