"""The real model's memory estimate (grader/run/footprint.py) and `grade` capping or refusing --workers.

No model is loaded: parameter counts are checked against models built on the meta device, and the
machine's memory is faked with QGRADER_MEMORY_GB or the `available` parameter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build
from grader.cli import main
from grader.run import footprint as F
from grader.settings import Settings
from grader.spec.pack import load_pack

PACKS = Path(__file__).resolve().parents[1] / "grader" / "packs"
QWEN3_4B = PACKS / "sphere-qwen3" / "model"


def _meta_count(config_dir: Path) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(config_dir)))
    return sum(p.numel() for p in model.parameters())  # tied parameters once


@pytest.fixture
def qwen_folder(tmp_path) -> Path:
    """A local model folder with Qwen3-4B's config.json and no weights (loading it fails, estimating does not)."""
    folder = tmp_path / "qwen3-4b"
    folder.mkdir()
    shutil.copyfile(QWEN3_4B / "config.json", folder / "config.json")
    return folder


def test_parameter_count_is_qwen3_4b():
    cfg = json.loads((QWEN3_4B / "config.json").read_text())
    assert F.parameter_count(cfg) == 4_022_468_096 == _meta_count(QWEN3_4B)


@pytest.mark.parametrize("pack", ["sphere-smollm2"])
def test_parameter_count_matches_other_families(pack):
    cfg = json.loads((PACKS / pack / "model" / "config.json").read_text())
    assert F.parameter_count(cfg) == _meta_count(PACKS / pack / "model")


def test_parameter_count_of_an_untied_config():
    cfg = json.loads((QWEN3_4B / "config.json").read_text())
    untied = dict(cfg, tie_word_embeddings=False)
    assert F.parameter_count(untied) - F.parameter_count(cfg) == cfg["vocab_size"] * cfg["hidden_size"]
    assert F.parameter_count({"n_embd": 768}) is None  # a config it cannot read: no estimate, no check


def test_estimate_at_qwen3_4b_shape():
    shape = F.model_shape(str(QWEN3_4B))
    assert shape.stored_dtype == "bfloat16" and shape.layers == 36
    fp = F.estimate(shape, load_pack().n_tokens)  # the default pack's prompt: 404 tokens
    assert 14.98 * F.GiB < fp.kernel < 18 * F.GiB  # the float32 weights and ~1-2 GiB more
    assert fp.golden > shape.weight_bytes("float32") + 7 * 36 * 404 * 2560 * 4  # weights + every site
    assert fp.needed(1) < 23.5 * F.GiB < fp.needed(2)  # this project's 2-core machine: one worker
    assert fp.needed(3, kernel_cap=4 * F.GiB) < fp.needed(3)  # --memory bounds each kernel


def test_plan_caps_and_refuses():
    model, gb = str(QWEN3_4B), F.GiB
    plan = F.plan_workers(model, 8, available=(40 * gb, "available (test)"))
    assert plan.workers == 2
    assert plan.note.startswith("--workers 8 capped to 2: a kernel that loads") and "40.0 GiB available (test)" in plan.note
    assert F.plan_workers(model, 1, available=(40 * gb, "x")).note is None
    with pytest.raises(F.UsageError, match=r"not enough memory .* 16\.\d GiB.* has 8\.0 GiB x"):
        F.plan_workers(model, 1, available=(8 * gb, "x"))
    assert F.plan_workers(model, 4, available=(None, "unknown")).workers == 4  # nothing known: nothing capped


def test_the_miniature_is_never_checked(monkeypatch):
    monkeypatch.setenv(F.MEMORY_ENV, "0.001")
    assert F.plan_workers("tiny", 64).workers == 64
    settings = Settings(workers=64)
    assert F.plan_settings(settings, log=pytest.fail) is settings


def test_unknown_model_is_not_checked(tmp_path):
    assert F.plan_workers(str(tmp_path), 8, available=(1, "x")).workers == 8


def test_available_memory(monkeypatch):
    monkeypatch.delenv(F.MEMORY_ENV, raising=False)
    free, where = F.available_memory()
    assert free is None or free > 0
    monkeypatch.setenv(F.MEMORY_ENV, "12.5")
    assert F.available_memory() == (int(12.5 * F.GiB), f"by {F.MEMORY_ENV}=12.5")
    monkeypatch.setenv(F.MEMORY_ENV, "lots")
    with pytest.raises(F.UsageError, match="must be a number of GB"):
        F.available_memory()


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(build("correct_layer_prehook"), str(folder / "hw.ipynb"))
    return folder


def test_grade_refuses_when_one_kernel_does_not_fit(src, qwen_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(F.MEMORY_ENV, "8")
    out = tmp_path / "grading"
    assert main([str(src), "--out", str(out), "--model", str(qwen_folder), "--memory", "0", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "error: not enough memory to grade with" in err and "has 8.0 GiB" in err
    assert "(nothing was run or written)" in err and not out.exists()


def test_grade_caps_workers_before_any_work(src, qwen_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(F.MEMORY_ENV, "40")
    out = tmp_path / "grading"
    # The folder has no weights: after the cap, loading the golden fails with a usage error (exit 2).
    assert main([str(src), "--out", str(out), "--model", str(qwen_folder), "--memory", "0", "--workers", "5"]) == 2
    captured = capsys.readouterr()
    assert "note: --workers 5 capped to 2: a kernel that loads" in captured.out
    assert "grading 1 submission(s) with 2 worker(s)" in captured.out
