"""An HF cache in which `Qwen/Qwen3-4B` has the real model's shape and random bfloat16 weights.

    python bench/qwen3_4b_snapshot.py /tmp/qwen3-4b-hf      # then HF_HOME=/tmp/qwen3-4b-hf grade --model Qwen/Qwen3-4B ...

Lays out DIR as an `HF_HOME` exactly as huggingface_hub does for the real checkpoint
(DIR/hub/models--Qwen--Qwen3-4B/{blobs,refs/main,snapshots/<rev>/}): Qwen3-4B's config.json and
generation_config.json (grader/packs/sphere-qwen3/model/), Qwen3's real tokenizer (the files the
miniature's cache uses), and three safetensors shards with model.safetensors.index.json, as the hub's
checkpoint is split. 4,022,468,096 parameters (tied embeddings stored once), 8.04 GB in bfloat16.

Memory: the model is built on the meta device only to list the tensors' names and shapes; each shard
is filled tensor by tensor directly in bfloat16 (N(0, 0.02), norm weights 1, a seeded generator) and
written before the next one is made, so no float32 copy and no more than one shard (~2.7 GB) is ever
held. Deterministic: the same seed gives the same bytes and the same revision. Takes ~2 minutes on 2
cores (mostly writing and hashing 8 GB). Never write it into the repository: it belongs under /tmp.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

PACK_MODEL = REPO / "grader" / "packs" / "sphere-qwen3" / "model"
MODEL_ID = "Qwen/Qwen3-4B"
SHARDS = 3  # the hub's Qwen3-4B is model-0000{1,2,3}-of-00003.safetensors
STD = 0.02  # Qwen3's initializer_range


def tensor_specs(layers: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor the checkpoint stores, in state_dict order; the tied lm_head is left out."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(PACK_MODEL))
    if layers:
        config.num_hidden_layers = config.max_window_layers = layers
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    specs = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    if config.tie_word_embeddings:
        specs = [(n, s) for n, s in specs if n != "lm_head.weight"]
    return specs


def split(specs: list[tuple[str, tuple[int, ...]]], shards: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Consecutive groups of about equal bytes."""
    import math

    sizes = [math.prod(s) for _, s in specs]
    target = sum(sizes) / shards
    groups, current, acc = [], [], 0
    for spec, size in zip(specs, sizes):
        if current and acc + size > target * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(current)
            current = []
        current.append(spec)
        acc += size
    groups.append(current)
    return groups


def revision(seed: int, layers: int | None = None) -> str:
    text = f"qwen3-4b-shape random bfloat16 N(0,{STD}) seed {seed} shards {SHARDS}" + (f" layers {layers}" if layers else "")
    return hashlib.sha1(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def build(hf_home: Path, seed: int = 0, layers: int | None = None, log=print) -> Path:
    """Write the cache; returns the snapshot folder. Reuses a complete one."""
    import torch
    from safetensors.torch import save_file

    from grader.spec.pack import load_pack
    from miniature.hf_cache import tokenizer_source_dir

    rev = revision(seed, layers)
    repo = Path(hf_home) / "hub" / ("models--" + MODEL_ID.replace("/", "--"))
    snap = repo / "snapshots" / rev
    done = snap / ".complete"
    if done.is_file():
        log(f"already built: {snap}")
        return snap
    staging = repo / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    t0 = time.monotonic()
    specs = tensor_specs(layers)
    groups = split(specs, SHARDS)
    gen = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for tname, shape in group:
            t = torch.empty(shape, dtype=torch.bfloat16)
            if tname.endswith("norm.weight"):
                t.fill_(1.0)
            else:
                t.normal_(0.0, STD, generator=gen)  # drawn in bfloat16: no float32 copy
            tensors[tname] = t
            weight_map[tname] = name
            total += t.numel() * t.element_size()
        save_file(tensors, str(staging / name), metadata={"format": "pt"})
        del tensors
        log(f"  {name}: {len(group)} tensors ({time.monotonic() - t0:.0f} s)")
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (staging / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config = json.loads((PACK_MODEL / "config.json").read_text())
    if layers:  # a smaller model of the same width, to measure with before the full shape
        config["num_hidden_layers"] = config["max_window_layers"] = layers
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copyfile(PACK_MODEL / "generation_config.json", staging / "generation_config.json")
    pack = load_pack("sphere-qwen3")  # Qwen3's tokenizer, as the miniature's cache holds it
    tok = tokenizer_source_dir(pack)
    for name in pack.tokenizer.files:
        shutil.copyfile(tok / name, staging / name)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir()):
        blob = repo / "blobs" / file_sha256(path)
        os.replace(path, blob)
        link = snap / path.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, snap))
    staging.rmdir()
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    for path in [Path(hf_home), *Path(hf_home).rglob("*")]:  # a sandboxed kernel runs as another user
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    done.write_text(f"{total} bytes of bfloat16 weights\n")
    log(f"wrote {len(specs)} tensors, {total:,} bytes, in {time.monotonic() - t0:.0f} s: {snap}")
    return snap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hf_home", type=Path, help="the HF_HOME to create (under /tmp, not the repository)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, help="fewer decoder layers (same width), to measure small first")
    args = parser.parse_args(argv)
    if Path(args.hf_home).resolve().is_relative_to(REPO):
        parser.error(f"{args.hf_home} is inside the repository; write the 8 GB snapshot elsewhere (e.g. /tmp)")
    build(args.hf_home, args.seed, args.layers)
    print(f"export HF_HOME={Path(args.hf_home).resolve()} HF_HUB_OFFLINE=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
