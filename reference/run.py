"""The assignment, done correctly, end to end; writes the golden artifacts into one folder.

    captures.npz      "{site}.{N}" -> [N_tokens, hidden] float32, every site of every layer
    projections.npz   "{N}" -> [3, N_tokens] float32, exact PCA top-3, each token on the unit sphere
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

from grader.io import sha256
from grader.spec.geometry import pca3
from grader.spec.pack import Assignment, load_pack
from grader.spec.sites import SITE_NAMES
from reference import model as model_mod
from reference.capture import Captures, capture_all_sites
from reference.metrics import layer_metrics

ARTIFACTS = ("captures.npz", "projections.npz", "tokens.gif", "decoder_layer.png", "metrics.json")


@dataclass
class ReferenceConfig:
    model: str = model_mod.TINY  # "tiny" (the pack's miniature), a hub id (from the HF cache) or a local folder
    assignment: str | None = None  # the assignment pack (grader/packs/<name> or a folder); None: the default
    out: Path = Path("reference-out")
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto"
    dtype: str = "float32"  # the golden is float32; bfloat16 shows what a bf16 student sees
    gif: bool = True  # the GIF is the slow part (36 frames x 404 3-D labels)
    diagram: bool = True
    workers: int | None = None  # processes drawing GIF frames (default: CPU count)


def tokenize(tokenizer, pack: Assignment | None = None) -> torch.Tensor:
    """The prompt's token ids [1, N] (the default pack's when none is given); fails if the tokenizer does not
    give the pack's token count."""
    pack = pack or load_pack()
    ids = tokenizer(pack.prompt, return_tensors="pt")["input_ids"]  # [1, N]
    want = pack.prompt_section.tokens
    if want is not None and ids.shape[1] != want:
        raise model_mod.UnsupportedModelError(
            f"the assignment's prompt must tokenize to {want} tokens with {pack.model.name}'s tokenizer; "
            f"this model's tokenizer ({type(tokenizer).__name__}) gives {ids.shape[1]}"
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
    pack = load_pack(cfg.assignment)
    loaded = model_mod.load(cfg.model, cfg.device, cfg.dtype, pack)
    model = loaded.model
    log(f"loaded {loaded.model_id} ({type(model).__name__}, {len(loaded.layers)} layers) on {cfg.device} in {cfg.dtype}")
    ids = tokenize(loaded.tokenizer, pack).to(next(model.parameters()).device)
    caps = capture_all_sites(model, ids, pack.family)
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

        draw_decoder_layer(model, out / "decoder_layer.png", pack.family)
    if cfg.gif:
        from reference.plotting import write_gif

        log(f"drawing {len(spheres)} GIF frames with the assignment's plotting code ...")
        labels = [loaded.tokenizer.decode([i]) for i in caps.input_ids]
        write_gif(spheres, out, labels, workers=cfg.workers)
    manifest = build_manifest(cfg, loaded, caps, out, pack, seconds=time.perf_counter() - t0)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {', '.join(sorted(manifest['files']))} and manifest.json to {out} in {manifest['seconds']:.1f} s")
    return manifest


def build_manifest(cfg: ReferenceConfig, loaded, caps: Captures, out: Path, pack: Assignment, seconds: float) -> dict:
    import transformers

    c = loaded.model.config
    return {
        "assignment": pack.name,
        "model_id": loaded.model_id,
        "name_or_path": loaded.name_or_path,
        "revision": loaded.revision,
        "is_miniature": loaded.is_miniature,
        "config": {
            "architecture": type(loaded.model).__name__,
            "num_hidden_layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "intermediate_size": getattr(c, "intermediate_size", None),  # GPT-2: None (4 x hidden)
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": getattr(c, "num_key_value_heads", None),
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
        "prompt": pack.prompt,
        "token_ids": caps.input_ids,
        "num_tokens": len(caps.input_ids),
        "sites": list(SITE_NAMES),
        "files": {name: sha256(out / name) for name in ARTIFACTS if (out / name).exists()},
        "seconds": round(seconds, 2),
    }
