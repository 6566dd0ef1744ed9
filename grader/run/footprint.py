"""How much memory grading a real model takes, and how many workers this machine can hold.

Estimated from the model's config.json alone (parameters x bytes per dtype, plus the activations of the
assignment's 404-token forward), before anything is loaded; the constants were measured at Qwen3-4B's
shape (bench/footprint.py, bench/RESULTS.md "footprint"):

  kernel   one student kernel, planned for float32 (the dtype a notebook may load that costs most):
           the float32 weights, the forward's activations (all 404 logits, the captures), the runtime.
           The checkpoint's mapped bfloat16 pages that from_pretrained reads while converting are clean
           page cache (reclaimed under pressure, shared by every process that maps the same files) and
           are not counted; a bfloat16 kernel keeps them mapped, so they are counted once for the machine.
  golden   the grader's golden run (reference.model.load converts without keeping the mapped copy,
           see reference/lowmem.py), before any worker starts; freed before the first kernel loads.
  worker   a worker process beside its kernel (it judges after the kernel has ended).

`plan_workers` caps --workers to what fits in the memory available now (MemAvailable, or the cgroup's
limit under Slurm, whichever is less; QGRADER_MEMORY_GB overrides it), or raises UsageError when not even
one kernel fits. The miniature is never checked: its kernels need well under a GB.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

from grader.errors import UsageError

GiB = 1 << 30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
PLAN_DTYPE = "float32"
KERNEL_RUNTIME = int(0.8 * GiB)  # python, torch, transformers, ipykernel, matplotlib, the recorder
GRADER_RUNTIME = int(0.6 * GiB)  # the grade process between goldens (torch imported, golden freed)
WORKER_RUNTIME = int(0.3 * GiB)  # a worker while its kernel runs (no torch)
TRANSIENT = int(0.5 * GiB)  # one layer's attention and MLP working set, allocator slack
MEMORY_ENV = "QGRADER_MEMORY_GB"  # plan with this many GB instead of what the machine reports


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    hidden: int
    vocab: int
    stored_dtype: str  # what the checkpoint holds (config torch_dtype)

    def weight_bytes(self, dtype: str) -> int:
        return self.params * DTYPE_BYTES[dtype]


def parameter_count(cfg: dict) -> int | None:
    """Parameters of a decoder-only (Qwen3/Llama-style) config, tied embeddings counted once; None when the
    config lacks the fields."""
    try:
        d, layers, inter, vocab = (int(cfg[k]) for k in ("hidden_size", "num_hidden_layers", "intermediate_size",
                                                         "vocab_size"))
        heads = int(cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return None
    kv = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or d // heads)
    bias = bool(cfg.get("attention_bias"))
    attn = d * heads * head_dim * 2 + d * kv * head_dim * 2 + (heads * head_dim + 2 * kv * head_dim + d) * bias
    if _norms_queries_and_keys(cfg):
        attn += 2 * head_dim  # q_norm, k_norm
    mlp = 3 * d * inter + (2 * inter + d) * bool(cfg.get("mlp_bias"))
    per_layer = attn + mlp + 2 * d  # + input_layernorm, post_attention_layernorm
    embeddings = vocab * d * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return embeddings + layers * per_layer + d


def _norms_queries_and_keys(cfg: dict) -> bool:
    """Whether the config's model family normalises each head's queries and keys (q_norm, k_norm)."""
    from grader.families import UnknownFamilyError, for_config

    try:
        family = for_config(cfg)
    except UnknownFamilyError:
        return False
    return any(".q_norm." in p.name for p in family.layer)


def _config_path(model: str) -> Path | None:
    local = Path(model) / "config.json"
    if local.is_file():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id, or no cache: no estimate
        return None
    return Path(found) if isinstance(found, str) else None


def model_shape(model: str) -> ModelShape | None:
    """The shape of `model` (a local folder or a hub id in the HF cache), from its config.json; None if unknown."""
    path = _config_path(model)
    if path is None:
        return None
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    params = parameter_count(cfg)
    if params is None:
        return None
    stored = str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32")
    return ModelShape(params, int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["vocab_size"]),
                      stored if stored in DTYPE_BYTES else "float32")


@dataclass(frozen=True)
class Footprint:
    shape: ModelShape
    kernel: int  # bytes one float32 kernel holds (anonymous memory)
    kernel_bf16: int  # bytes one bfloat16 kernel holds besides the shared mapped checkpoint
    golden: int  # bytes of the grader's float32 golden run
    worker: int  # bytes of a worker process beside its kernel
    grader: int  # bytes of the grade process while workers run

    @property
    def shared(self) -> int:
        """The checkpoint's pages, mapped by bfloat16 kernels: resident once for the whole machine."""
        return self.shape.weight_bytes(self.shape.stored_dtype)

    def needed(self, workers: int, kernel_cap: int | None = None) -> int:
        """Bytes for the grade process and `workers` workers with their kernels (each capped at kernel_cap)."""
        fp32 = min(self.kernel, kernel_cap or self.kernel)
        bf16 = min(self.kernel_bf16, kernel_cap or self.kernel_bf16)
        return self.grader + workers * self.worker + max(workers * fp32, self.shared + workers * bf16)


def estimate(shape: ModelShape, tokens: int) -> Footprint:
    captured = shape.layers * tokens * shape.hidden * 4  # one float32 capture per layer
    all_sites = 7 * captured  # the golden's seven sites per layer
    logits = tokens * shape.vocab * 4
    activations = logits + 2 * captured + TRANSIENT  # the captures, and a copy made for the PCA
    return Footprint(
        shape=shape,
        kernel=shape.weight_bytes(PLAN_DTYPE) + activations + KERNEL_RUNTIME,
        kernel_bf16=activations + KERNEL_RUNTIME,
        golden=shape.weight_bytes("float32") + all_sites + captured + TRANSIENT + GRADER_RUNTIME,
        worker=WORKER_RUNTIME,
        grader=GRADER_RUNTIME,
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Room left under this process's cgroup v2 memory limit (a Slurm job's --mem), page cache counted as free."""
    try:
        line = next(l for l in Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::"))
        base = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        current = int((base / "memory.current").read_text())
        stat = dict(l.split() for l in (base / "memory.stat").read_text().splitlines() if len(l.split()) == 2)
        return int(limit) - current + int(stat.get("file", 0))
    except (OSError, StopIteration, ValueError):
        return None


def available_memory() -> tuple[int | None, str]:
    """(bytes this run may use, where the number comes from); (None, ...) where it cannot be known."""
    override = os.environ.get(MEMORY_ENV)
    if override:
        try:
            return int(float(override) * GiB), f"by {MEMORY_ENV}={override}"
        except ValueError:
            raise UsageError(f"{MEMORY_ENV} must be a number of GB, found {override!r}") from None
    found = [(v, w) for v, w in ((_meminfo_available(), "available (MemAvailable)"),
                                 (_cgroup_available(), "left under this job's memory limit (cgroup)")) if v is not None]
    return min(found) if found else (None, "unknown")


def gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    footprint: Footprint | None = None
    available: int | None = None
    note: str | None = None  # one line for the run log, when the plan says something


def plan_workers(model: str, workers: int, memory_bytes: int | None = None,
                 available: tuple[int | None, str] | None = None, tokens: int | None = None) -> WorkerPlan:
    """How many of `workers` fit in memory for `model` (see the module doc); UsageError when none does.
    `tokens`: the prompt's length (default: the default pack's)."""
    from grader.settings import TINY

    shape = None if model == TINY else model_shape(model)
    if shape is None:
        return WorkerPlan(workers)
    if tokens is None:
        from grader.spec.pack import load_pack

        tokens = load_pack().n_tokens
    fp = estimate(shape, tokens)
    free, where = available if available is not None else available_memory()
    if free is None:
        return WorkerPlan(workers, fp)
    cap = memory_bytes or None  # --memory: a kernel's address space, so also a bound on what it holds
    what = (f"a kernel that loads {model} ({shape.params / 1e9:.2f} B parameters) in float32 needs about "
            f"{gib(min(fp.kernel, cap or fp.kernel))}" + (f" (at most its --memory {gib(cap)})" if cap else ""))
    fits = max((n for n in range(1, workers + 1) if max(fp.needed(n, cap), fp.golden) <= free), default=0)
    if fits == 0:
        raise UsageError(f"not enough memory to grade with {model}: {what}, the grader "
                         f"{gib(fp.grader + fp.worker)} beside it and its golden run {gib(fp.golden)}, and this "
                         f"machine has {gib(free)} {where}; grade on a machine (or a Slurm --mem) with at least "
                         f"{gib(max(fp.needed(1, cap), fp.golden))} (nothing was run or written)")
    if fits < workers:
        return WorkerPlan(fits, fp, free, f"--workers {workers} capped to {fits}: {what}, {fits + 1} would need "
                                          f"{gib(fp.needed(fits + 1, cap))} and this machine has {gib(free)} {where}")
    return WorkerPlan(workers, fp, free)


def plan_settings(settings, log=print):
    """Settings with --workers capped to what fits (the note logged); UsageError when nothing fits."""
    from grader.spec.pack import load_pack

    plan = plan_workers(settings.model, settings.workers, settings.memory_bytes,
                        tokens=load_pack(settings.assignment).n_tokens)
    if plan.note:
        log(f"note: {plan.note}")
    return settings if plan.workers == settings.workers else replace(settings, workers=plan.workers)


def release_memory() -> None:
    """Give what the golden run freed back to the system before kernels load (glibc keeps freed heap)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
