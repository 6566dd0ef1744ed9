"""`grade new-assignment DIR --model ID` (grader/run/new_assignment.py), run as an instructor runs it.

The scaffolded pack (another prompt, the SmolLM2 model) must load, carry the prompt's tokens under
SmolLM2's tokenizer, say SmolLM2 (not Qwen3) in its task text, and pass its own self-test: the reference
solution gets every automated point and the known mistake fails exactly its labelled checks, graded on the
new pack's miniature in real kernels. Refusals exit 2 and write nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from grader.spec.pack import load_pack

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPT = ("The quick brown fox jumps over the lazy dog. A residual stream carries every token through the "
          "layers of a transformer, and each layer adds its update to it.")


def _grade(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, timeout=1200)


def test_a_new_pack_for_smollm2_with_another_prompt_passes_its_self_test(tmp_path):
    (tmp_path / "prompt.txt").write_text(PROMPT + "\n")
    dest = tmp_path / "sphere-smollm2-short"
    proc = _grade("new-assignment", str(dest), "--model", SMOLLM2_ID, "--prompt-file", str(tmp_path / "prompt.txt"),
                  "--title", "A short prompt on SmolLM2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "correct_layer_prehook: 85/85 automated points, failed none" in proc.stdout, proc.stdout[-2000:]
    assert "wrong_site_mlp: 60/85 automated points, failed p3.captures_match, p3.hook_site - as expected" in proc.stdout

    pack = load_pack(dest)
    assert (pack.info.name, pack.info.title, pack.model.id, pack.family.name) == (
        "sphere-smollm2-short", "A short prompt on SmolLM2", SMOLLM2_ID, "llama")
    assert pack.prompt == PROMPT and pack.n_layers == 30
    tokens = json.loads((dest / "golden" / "tokens.json").read_text())
    assert pack.n_tokens == len(tokens["ids"]) == len(pack.tokens.labels) < 60
    assert tokens["ids"][0] != tokens["ids"][1] and all(isinstance(i, int) for i in tokens["ids"])
    task = pack.task_markdown
    assert "SmolLM2-135M-Instruct" in task and "LlamaDecoderLayer" in task and "modeling_llama.py" in task
    assert "Qwen" not in task
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{dest.name}.new-")]  # no staging left


def test_refusals_exit_2_and_write_nothing(tmp_path):
    (tmp_path / "mamba").mkdir()
    (tmp_path / "mamba" / "config.json").write_text('{"architectures": ["MambaForCausalLM"], "model_type": "mamba"}')
    proc = _grade("new-assignment", str(tmp_path / "new"), "--model", str(tmp_path / "mamba"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "MambaForCausalLM" in proc.stderr and "qwen3 (Qwen3ForCausalLM), llama (LlamaForCausalLM)" in proc.stderr

    proc = _grade("new-assignment", str(tmp_path / "new"), "--model", "nobody/no-such-model")
    assert proc.returncode == 2 and "no config.json found offline" in proc.stderr, proc.stderr

    proc = _grade("new-assignment", str(tmp_path / "new"), "--model", SMOLLM2_ID, "--prompt-file",
                  str(tmp_path / "missing.txt"))
    assert proc.returncode == 2 and "missing.txt: no such file" in proc.stderr, proc.stderr

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    proc = _grade("new-assignment", str(tmp_path / "taken"), "--model", SMOLLM2_ID)
    assert proc.returncode == 2 and "is not an empty folder" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mamba", "taken"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
