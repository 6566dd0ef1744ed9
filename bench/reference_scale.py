"""The reference capture at Qwen3-4B scale: time and memory of capture_all_sites against a bare forward.

    python bench/reference_scale.py                    # compare: both, side by side (default)
    python bench/reference_scale.py --mode bare        # one bare forward in this process
    python bench/reference_scale.py --mode capture     # one reference capture in this process

The model is Qwen3ForCausalLM built from Qwen3-4B's real config (hidden 2560, 36 layers, vocab
151936, tied embeddings): constructed on the meta device, materialised with `to_empty` and filled
with seeded random weights, so nothing is downloaded. The input is the assignment's prompt under
the real Qwen3 tokenizer, [1, 404].

What is compared, both under torch.no_grad() and on the same model and input:
  bare     model(input_ids=ids, use_cache=False): logits for all 404 positions, no hidden states,
           no hooks, nothing copied to numpy.
  capture  reference.capture.capture_all_sites(model, ids): the same call plus
           output_hidden_states=True and 7 x 36 forward hooks copying each site to a float32 numpy
           array, then the float32 copies of the hidden states and the cross-check.

Goals (from the issue): capture seconds / bare seconds <= 1.10, and the capture process's peak RSS
<= 1.10 x (weight bytes + capture bytes), captures being 7 x 36 x 404 x 2560 float32.
Peak RSS is ru_maxrss of a process that does nothing else, so `compare` measures it in child
processes started before the parent builds its own model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from miniature.hf_cache import ensure_hf_home, snapshot_dir  # noqa: E402
from grader.spec.pack import load_pack  # noqa: E402
from reference.capture import capture_all_sites  # noqa: E402
from reference.model import DTYPES, decoder_layers  # noqa: E402
from reference.run import tokenize  # noqa: E402
from grader.spec.sites import SITE_NAMES  # noqa: E402

TIME_GOAL = 1.10  # capture seconds / bare seconds
MEMORY_GOAL = 1.10  # capture peak RSS / (weight bytes + capture bytes)
RESULT_TAG = "RESULT "  # prefix of the one JSON line a single-mode run prints, read by compare


@dataclass(frozen=True)
class BenchConfig:
    mode: str = "compare"  # "bare", "capture" or "compare"
    device: str = "cpu"  # "cpu" or "cuda" (cuda: times are synchronised, GPU peak is reported too)
    dtype: str = "bfloat16"  # bfloat16: 8.0 GB of weights, ~2.6x the float32 matmul speed on this CPU
    pairs: int = 3  # compare: timed bare/capture pairs, after the warm-up pairs
    warmup: int = 1  # compare: untimed bare/capture pairs first (kernel selection, first touches)
    seed: int = 0  # seed of the torch.Generator that draws the weights
    std: float = 0.02  # normal std of every matrix (Qwen3's initializer_range); norm weights are 1
    children: bool = True  # compare: measure peak RSS of `--mode bare` and `--mode capture` children


# ----------------------------------------------------------------------------------- the model


def build_model(cfg: BenchConfig) -> torch.nn.Module:
    """Qwen3ForCausalLM with Qwen3-4B's config and seeded random weights, on cfg.device in cfg.dtype."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding

    config = Qwen3Config(**load_pack().model_config)  # Qwen3-4B's real config.json, from the default pack
    device = torch.device(cfg.device)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(config).to(DTYPES[cfg.dtype])  # no memory yet
    model.to_empty(device=device)  # uninitialised storage; untouched pages are not resident
    model.lm_head.weight = model.model.embed_tokens.weight  # to_empty unties; Qwen3-4B ties them
    with device:  # inv_freq was on meta too: rebuild it as from_pretrained does, in float32
        model.model.rotary_emb = Qwen3RotaryEmbedding(config)
    fill_weights(model, cfg.seed, cfg.std)
    return model.eval()


@torch.no_grad()
def fill_weights(model: torch.nn.Module, seed: int, std: float) -> None:
    """Every norm weight = 1, every other parameter ~ N(0, std), drawn in named_parameters order."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, param in model.named_parameters():  # shared (tied) parameters come once
        if name.endswith("norm.weight"):
            param.fill_(1.0)
        else:
            param.normal_(0.0, std, generator=gen)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the parameters (tied ones once) and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def capture_bytes(model: torch.nn.Module, num_tokens: int) -> int:
    """Bytes of the float32 captures: 7 sites x layers x tokens x hidden."""
    layers = len(decoder_layers(model))
    return len(SITE_NAMES) * layers * num_tokens * model.config.hidden_size * 4


def load_input_ids(device: str) -> torch.Tensor:
    """The assignment's prompt under the real Qwen3 tokenizer (bundled, offline)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(snapshot_dir(ensure_hf_home())))
    return tokenize(tokenizer).to(device)  # [1, 404]


# ---------------------------------------------------------------------------------- measuring


def bare_forward(model: torch.nn.Module, input_ids: torch.Tensor) -> None:
    with torch.no_grad():
        out = model(input_ids=input_ids, use_cache=False)  # logits [1, 404, 151936]
    del out


def capture_forward(model: torch.nn.Module, input_ids: torch.Tensor) -> None:
    caps = capture_all_sites(model, input_ids)  # 252 arrays [404, 2560] float32, cross-checked
    del caps


RUNNERS = {"bare": bare_forward, "capture": capture_forward}


def timed(fn, model: torch.nn.Module, input_ids: torch.Tensor) -> tuple[float, float]:
    """(wall, CPU) seconds of fn(model, input_ids), including freeing what it returned.

    CPU seconds are this process's user + system time over all its threads: on a machine that other
    work shares, they move less than wall seconds do.
    """
    sync = torch.cuda.synchronize if input_ids.is_cuda else (lambda: None)
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    fn(model, input_ids)
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    """The 1-minute load average against the cores: '2.1 on 2 cores' (other work on the machine)."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def verdict(ratio: float, goal: float) -> str:
    return "PASS" if ratio <= goal else "MISS"


# -------------------------------------------------------------------------------------- modes


def run_single(cfg: BenchConfig) -> dict:
    """Build, run one forward of cfg.mode, print its figures and a RESULT json line."""
    t0 = time.perf_counter()
    input_ids = load_input_ids(cfg.device)
    model = build_model(cfg)
    build_s = time.perf_counter() - t0
    load_before = load()
    seconds, cpu_seconds = timed(RUNNERS[cfg.mode], model, input_ids)
    w, c = weight_bytes(model), capture_bytes(model, input_ids.shape[1])
    result = {
        "mode": cfg.mode,
        "device": cfg.device,
        "dtype": cfg.dtype,
        "threads": torch.get_num_threads(),
        "build_s": round(build_s, 2),
        "forward_s": round(seconds, 3),
        "forward_cpu_s": round(cpu_seconds, 3),
        "load_before": load_before,
        "load_after": load(),
        "peak_rss_bytes": peak_rss_bytes(),
        "weight_bytes": w,
        "capture_bytes": c,
    }
    if cfg.device.startswith("cuda"):
        result["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
    print(f"{cfg.mode}: built in {build_s:.1f} s; forward {seconds:.2f} s wall, {cpu_seconds:.2f} s CPU "
          f"({cfg.dtype}, {cfg.device}, {result['threads']} threads; load {load_before} -> {load()})")
    print(f"  peak RSS {gib(result['peak_rss_bytes'])}; weights {gib(w)}; captures {gib(c)}; "
          f"weights + captures {gib(w + c)}")
    if cfg.mode == "capture":
        ratio = result["peak_rss_bytes"] / (w + c)
        print(f"  peak RSS / (weights + captures) = {ratio:.3f}x (goal <= {MEMORY_GOAL:.2f}x): "
              f"{verdict(ratio, MEMORY_GOAL)}")
    print(RESULT_TAG + json.dumps(result), flush=True)
    return result


def run_child(cfg: BenchConfig, mode: str) -> dict:
    """Run this script with --mode MODE as its own process; return its RESULT line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mode", mode, "--device", cfg.device,
           "--dtype", cfg.dtype, "--seed", str(cfg.seed), "--std", str(cfg.std)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG))
    return json.loads(line[len(RESULT_TAG):])


def alternate(cfg: BenchConfig, model: torch.nn.Module, input_ids: torch.Tensor) -> dict[str, list[float]]:
    """Warm-up pairs, then cfg.pairs timed pairs bare, capture, bare, capture, ...

    Returns wall and CPU seconds of the timed runs: {"bare": [...], "capture": [...],
    "bare_cpu": [...], "capture_cpu": [...]}.
    """
    times: dict[str, list[float]] = {k: [] for k in ("bare", "capture", "bare_cpu", "capture_cpu")}
    for i in range(cfg.warmup + cfg.pairs):
        for mode, fn in RUNNERS.items():
            seconds, cpu_seconds = timed(fn, model, input_ids)
            label = "warm-up" if i < cfg.warmup else f"pair {i - cfg.warmup + 1}"
            print(f"  {label:7s} {mode:7s} {seconds:7.2f} s wall {cpu_seconds:7.2f} s CPU  (load {load()})",
                  flush=True)
            if i >= cfg.warmup:
                times[mode].append(seconds)
                times[mode + "_cpu"].append(cpu_seconds)
    return times


def run_compare(cfg: BenchConfig) -> None:
    children = {}
    if cfg.children:  # before this process holds a model of its own
        for mode in RUNNERS:
            print(f"child process --mode {mode} ...", flush=True)
            children[mode] = run_child(cfg, mode)
    input_ids = load_input_ids(cfg.device)
    t0 = time.perf_counter()
    model = build_model(cfg)
    print(f"built Qwen3-4B-shaped model ({cfg.dtype}, {cfg.device}, {torch.get_num_threads()} threads) "
          f"in {time.perf_counter() - t0:.1f} s; input_ids {tuple(input_ids.shape)}", flush=True)
    times = alternate(cfg, model, input_ids)
    report(times, children)


def report(times: dict[str, list[float]], children: dict[str, dict]) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(c / b for b, c in zip(times["bare"], times["capture"]))
    cpu_ratio = statistics.median(c / b for b, c in zip(times["bare_cpu"], times["capture_cpu"]))
    print(f"median bare    {med['bare']:.2f} s wall, {med['bare_cpu']:.2f} s CPU  "
          "(model(input_ids, use_cache=False): all logits, no hidden states)")
    print(f"median capture {med['capture']:.2f} s wall, {med['capture_cpu']:.2f} s CPU  "
          "(capture_all_sites: + output_hidden_states, 252 hooks, cross-check)")
    print(f"time: median of pairwise capture/bare = {ratio:.3f} wall, {cpu_ratio:.3f} CPU "
          f"(goal <= {TIME_GOAL:.2f}): {verdict(ratio, TIME_GOAL)} (wall)")
    # Other work on the machine only ever adds time, so the fastest run is the least disturbed one.
    fastest = min(times["capture"]) / min(times["bare"])
    print(f"      fastest capture / fastest bare = {min(times['capture']):.2f} / {min(times['bare']):.2f} s "
          f"= {fastest:.3f} (goal <= {TIME_GOAL:.2f}): {verdict(fastest, TIME_GOAL)}")
    if "capture" in children:
        cap = children["capture"]
        denom = cap["weight_bytes"] + cap["capture_bytes"]
        mem = cap["peak_rss_bytes"] / denom
        if "bare" in children:
            print(f"peak RSS, bare child:    {gib(children['bare']['peak_rss_bytes'])}")
        print(f"peak RSS, capture child: {gib(cap['peak_rss_bytes'])}; weights {gib(cap['weight_bytes'])} "
              f"+ captures {gib(cap['capture_bytes'])} = {gib(denom)}")
        print(f"memory: capture peak RSS / (weights + captures) = {mem:.3f}x (goal <= {MEMORY_GOAL:.2f}x): "
              f"{verdict(mem, MEMORY_GOAL)}")
    print(RESULT_TAG + json.dumps({"times": times, "children": children}), flush=True)


# ---------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    d = BenchConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--mode", default=d.mode, choices=["compare", *RUNNERS],
                   help="bare / capture: one forward in this process; compare: both alternately, "
                   "plus the peak RSS of each in a child process (default: %(default)s)")
    p.add_argument("--device", default=d.device, choices=["cpu", "cuda"], help="default: %(default)s")
    p.add_argument("--dtype", default=d.dtype, choices=["float32", "bfloat16"],
                   help="weights and activations; captures are float32 either way (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=d.pairs, help="compare: timed pairs (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="compare: untimed pairs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="weight seed (default: %(default)s)")
    p.add_argument("--std", type=float, default=d.std, help="weight std (default: %(default)s)")
    p.add_argument("--no-children", dest="children", action="store_false",
                   help="compare: skip the peak-RSS child processes")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    if args.pairs < 1 or args.warmup < 0:
        p.error("--pairs must be >= 1 and --warmup >= 0")
    return BenchConfig(**vars(args))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    print("config: " + json.dumps(asdict(cfg)), flush=True)
    if cfg.mode == "compare":
        run_compare(cfg)
    else:
        run_single(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
