"""The assignment, done correctly, end to end; writes the golden artifacts into one folder.

    captures.npz      "{site}.{N}" -> [404, hidden] float32, every site of every layer
    projections.npz   "{N}" -> [3, 404] float32, exact PCA top-3, each token on the unit sphere
    tokens.gif        one frame per layer, drawn with the assignment's plotting code
    decoder_layer.png the Part 2 diagram, generated from the module tree
    metrics.json      per-layer singular values, clustering and motion metrics
    manifest.json     model, revision, versions, prompt, token ids, sha256 of every file
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reference import model as model_mod
from grader.spec.assignment import LABELS, NUM_TOKENS, PROMPT
from reference.capture import Captures, capture_all_sites
from grader.io import sha256
from reference.metrics import layer_metrics
from grader.spec.geometry import pca3
from grader.spec.sites import SITE_NAMES

ARTIFACTS = ("captures.npz", "projections.npz", "tokens.gif", "decoder_layer.png", "metrics.json")


@dataclass
class ReferenceConfig:
    model: str = model_mod.TINY  # "tiny", a hub id (from the HF cache) or a local folder
    out: Path = Path("reference-out")
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    dtype: str = "float32"  # the golden is float32; bfloat16 shows what a bf16 student sees
    gif: bool = True  # the GIF is the slow part (36 frames x 404 3-D labels)
    diagram: bool = True
    workers: int | None = None  # processes drawing GIF frames (default: CPU count)


def tokenize(tokenizer) -> torch.Tensor:
    """The prompt's token ids [1, 404]; fails if the tokenizer is not Qwen3's."""
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]  # [1, N]
    if ids.shape[1] != NUM_TOKENS:
        raise model_mod.UnsupportedModelError(
            f"the assignment's prompt must tokenize to {NUM_TOKENS} tokens with Qwen3's tokenizer; "
            f"this model's tokenizer ({type(tokenizer).__name__}) gives {ids.shape[1]}"
        )
    decoded = [tokenizer.decode([i]) for i in ids[0].tolist()]
    if decoded != LABELS:
        first = next(i for i, (a, b) in enumerate(zip(decoded, LABELS)) if a != b)
        raise model_mod.UnsupportedModelError(
            f"token {first} decodes to {decoded[first]!r}; the assignment's labels say {LABELS[first]!r}"
        )
    return ids


def project_all(caps: Captures) -> tuple[list[np.ndarray], list]:
    """Per layer: exact PCA of resid_pre; returns ([3, N] sphere points, PCA3 results)."""
    fits = [pca3(caps.get("resid_pre", n)) for n in range(caps.num_layers)]
    return [f.sphere for f in fits], fits


def run_reference(cfg: ReferenceConfig, log=print) -> dict:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = model_mod.load(cfg.model, cfg.device, cfg.dtype)
    model = loaded.model
    log(f"loaded {loaded.model_id} ({type(model).__name__}, {len(loaded.layers)} layers) on {cfg.device} in {cfg.dtype}")
    ids = tokenize(loaded.tokenizer).to(next(model.parameters()).device)
    caps = capture_all_sites(model, ids)
    log(f"captured {len(caps.arrays)} site activations of {caps.num_layers} layers, cross-checked")
    np.savez(out / "captures.npz", **caps.arrays)
    spheres, fits = project_all(caps)
    np.savez(out / "projections.npz", **{str(n): p for n, p in enumerate(spheres)})
    metrics = layer_metrics(
        [caps.get("resid_pre", n) for n in range(caps.num_layers)], [f.singular_values for f in fits], spheres
    )
    (out / "metrics.json").write_text(json.dumps({"layers": metrics}, indent=1) + "\n")
    if cfg.diagram:
        from reference.diagram import draw_decoder_layer

        draw_decoder_layer(model, out / "decoder_layer.png")
    if cfg.gif:
        from reference.plotting import write_gif

        log(f"drawing {len(spheres)} GIF frames with the assignment's plotting code ...")
        write_gif(spheres, out, workers=cfg.workers)
    manifest = build_manifest(cfg, loaded, caps, out, seconds=time.perf_counter() - t0)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {', '.join(sorted(manifest['files']))} and manifest.json to {out} in {manifest['seconds']:.1f} s")
    return manifest


def build_manifest(cfg: ReferenceConfig, loaded, caps: Captures, out: Path, seconds: float) -> dict:
    import transformers

    c = loaded.model.config
    return {
        "model_id": loaded.model_id,
        "name_or_path": loaded.name_or_path,
        "revision": loaded.revision,
        "is_miniature": loaded.is_miniature,
        "config": {
            "architecture": type(loaded.model).__name__,
            "num_hidden_layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None),
            "vocab_size": c.vocab_size,
            "tie_word_embeddings": getattr(c, "tie_word_embeddings", None),
        },
        "dtype": cfg.dtype,
        "device": str(next(loaded.model.parameters()).device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "prompt": PROMPT,
        "token_ids": caps.input_ids,
        "num_tokens": len(caps.input_ids),
        "sites": list(SITE_NAMES),
        "files": {name: sha256(out / name) for name in ARTIFACTS if (out / name).exists()},
        "seconds": round(seconds, 2),
    }
