"""The third module tree graded end to end: catalog notebooks converted to the `sphere-gpt2` pack
(fixtures/notebooks/gpt2.py; GPT-2's `transformer.h.N.ln_1 / attn / ln_2 / mlp`, LayerNorm with bias,
Conv1D) are graded by `grade --assignment sphere-gpt2` on its miniature in real kernels, and each gets its
catalog verdicts: the same failing checks, the same site named, one GIF frame per GPT-2 layer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.notebooks.catalog import get
from fixtures.notebooks.gpt2 import NAMES, PACK, write_all
from grader.spec.pack import load_pack
from grader.spec.sites import SITE_NAMES


@pytest.fixture(scope="module")
def gpt2_batch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gpt2")
    write_all(root / "subs")
    proc = subprocess.run([sys.executable, "-m", "grader.cli", str(root / "subs"), "--out", str(root / "out"),
                           "--assignment", PACK, "--workers", "2", "--no-report"],
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root / "out"


@pytest.mark.parametrize("name", NAMES)
def test_gpt2_notebooks_get_their_catalog_verdicts(gpt2_batch, name):
    expect, n_layers = get(name).expect, load_pack(PACK).n_layers
    res = json.loads((gpt2_batch / name / "results.json").read_text())
    extra = res["extra_data"]
    assert extra["status"] == expect["status"], extra["reason"]
    failed = sorted(c["id"] for c in extra["checks"] if not c["manual"] and c["status"] != "passed")
    assert failed == sorted(set(expect["fails"]) - set(expect["carried"])), {
        t["name"]: t["output"] for t in res["tests"] if t["status"] != "passed"}
    if expect["captures_site"] is None:
        assert extra["captures_site"] not in SITE_NAMES
    else:
        assert extra["captures_site"] == expect["captures_site"]
    assert extra["gif_frames"] == (n_layers if expect["gif_frames"] == 36 else expect["gif_frames"])


def test_gpt2_feedback_names_gpt2_modules(gpt2_batch):
    text = next(t["output"] for t in json.loads((gpt2_batch / "wrong_site_ln_output" / "results.json").read_text())
                ["tests"] if t["name"].startswith("p3.captures_match:"))
    assert "ln_1" in text and "input_layernorm" not in text, text
    assert f"{load_pack(PACK).n_layers} of your {load_pack(PACK).n_layers} captured layers" in text, text
