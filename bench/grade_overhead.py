"""What `grade` costs on top of just running the notebooks, and what a second worker buys.

    python bench/grade_overhead.py [--notebooks correct_layer_prehook,...] [--pairs 3] [--real-plot]

1. Overhead: the same notebooks run (a) with bare nbclient (a fresh kernel, the same environment,
   cells top to bottom) and (b) with `grade` on one worker (instrumented sandboxed kernel,
   extraction, judging, report), alternating a/b, `--pairs` times. Prints per-notebook medians and
   the median ratio grade/bare (goal <= 1.05).
2. Batch: the same notebooks as a batch of `--batch` (copies, cycled): bare nbclient one after the
   other, `grade --workers 1` and `grade --workers 2`, in turn. Prints the batch overhead
   grade(1 worker)/bare, where the once-per-run costs (start-up, golden, sandbox probe, class
   outputs) are shared as they are in a class, notebooks per minute, and the 2-vs-1 worker ratio
   (goal >= 1.8x on a 2-core machine).

Whole-process wall times (`time.perf_counter` around each subprocess); both sides run here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, kernel_name="python3", timeout=1200, allow_errors=True,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


def bare_env(hf_home: Path, workdir: Path) -> dict:
    """The environment `grade` gives its kernels, minus the sandbox: the fair baseline."""
    from grader.execute.config import ExecuteConfig, kernel_env

    env = kernel_env(ExecuteConfig(hf_home=hf_home, threads=os.cpu_count() or 1), workdir)
    env["PATH"] = os.environ["PATH"]
    return env


def run_bare(nb: Path, hf_home: Path) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    try:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", BARE, str(nb), str(work)], env=bare_env(hf_home, work), check=True,
                       capture_output=True)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_grade(paths: list[Path], workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-grade-"))
    try:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader.cli", *map(str, paths), "--out", str(out / "g"),
                        "--workers", str(workers)], check=True, capture_output=True)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    from miniature.hf_cache import ensure_hf_home
    from fixtures.notebooks import write_all

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notebooks", default="correct_layer_prehook,wrong_site_mlp,correct_pca_lowrank")
    p.add_argument("--real-plot", action="store_true", help="use correct_real_plot (the assignment's plotting code)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--batch", type=int, default=8, help="notebooks in the throughput batch")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    hf_home = ensure_hf_home()
    names = ["correct_real_plot"] if args.real_plot else args.notebooks.split(",")
    src = Path(tempfile.mkdtemp(prefix="bench-nbs-"))
    paths = write_all(src, names)
    run_grade(paths[:1], 1)  # warm: golden cache, sandbox probe, page cache
    print(f"machine: {os.cpu_count()} CPUs; notebooks: {', '.join(names)}; {args.pairs} alternating pairs each")
    ratios = []
    for path in paths:
        bare, graded = [], []
        for _ in range(args.pairs):
            bare.append(run_bare(path, hf_home))
            graded.append(run_grade([path], 1))
        pair_ratios = [g / b for g, b in zip(graded, bare)]
        ratios += pair_ratios
        print(f"  {path.stem:<28} bare {statistics.median(bare):6.1f} s   grade {statistics.median(graded):6.1f} s   "
              f"ratio {statistics.median(pair_ratios):.3f} (min {min(pair_ratios):.3f}, max {max(pair_ratios):.3f})")
    med = statistics.median(ratios)
    print(f"overhead: median grade/bare = {med:.3f}  (goal <= 1.05: {'PASS' if med <= 1.05 else 'MISS'})")
    if not args.skip_throughput:
        batch_dir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
        batch = write_all(batch_dir, (names * args.batch)[: args.batch]) if len(set(names)) >= args.batch else [
            shutil.copyfile(paths[i % len(paths)], batch_dir / f"nb{i}.ipynb") for i in range(args.batch)]
        one, two, bare = [], [], []
        for _ in range(max(1, args.pairs - 1)):
            bare.append(sum(run_bare(Path(b), hf_home) for b in batch))
            one.append(run_grade([Path(b) for b in batch], 1))
            two.append(run_grade([Path(b) for b in batch], 2))
        batch_ratio = statistics.median(o / b for o, b in zip(one, bare))
        print(f"batch of {args.batch}: bare one after the other {statistics.median(bare):.1f} s, grade --workers 1 "
              f"{statistics.median(one):.1f} s; overhead grade/bare = {batch_ratio:.3f}  "
              f"(goal <= 1.05: {'PASS' if batch_ratio <= 1.05 else 'MISS'})")
        speedup = statistics.median(o / t for o, t in zip(one, two))
        print(f"throughput: 1 worker {60 * args.batch / statistics.median(one):.1f} notebooks/min, "
              f"2 workers {60 * args.batch / statistics.median(two):.1f} notebooks/min; "
              f"2 vs 1 = {speedup:.2f}x  (goal >= 1.8x: {'PASS' if speedup >= 1.8 else 'MISS'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
