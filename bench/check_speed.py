"""How long the student self-check takes against just running the notebook.

    python bench/check_speed.py [--pairs 3] [--notebook correct_real_plot] [--full]

Side by side in one run, alternating: (a) the notebook run bare with nbclient in a fresh kernel, with
the environment `grade` gives its kernels (same HF_HOME with the miniature, same thread count, no
sandbox, no instrumentation; bench/grade_overhead.py's `bare_env`), and (b) `grade-check NOTEBOOK`
(`python -m grader.run.selfcheck`: sandboxed instrumented kernel, every cell, the plotting cell's 3-D
labels drawn blank (grader/execute/fastplot.py; before it, an unchanged provided cell was skipped),
extraction, judging, the rubric, the feedback page). Whole-process wall times
(`time.perf_counter` around each subprocess), one warm-up check first (HF cache, goldens, page cache).
Prints per-side medians, the ratio of the medians and the median of the per-pair ratios check/bare
(goal <= 0.5). `--full` measures `grade-check --full` instead (labels drawn too: the overhead).
bench/fast_plot.py measures the same against a notebook whose plotting cell is a student's variant.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grade_overhead import run_bare  # noqa: E402  (the bare side, exactly as grade_overhead measures it)

GOAL = 0.5


def run_check(nb: Path, full: bool) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "grader.run.selfcheck", str(nb), "--out", str(out),
                               *(["--full"] if full else [])], capture_output=True, text=True)
        return time.perf_counter() - t, proc.returncode
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    from fixtures.notebooks import write_all
    from miniature.hf_cache import ensure_hf_home

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notebook", default="correct_real_plot", help="a fixture notebook (fixtures/notebooks)")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--full", action="store_true", help="measure grade-check --full (every cell) instead")
    args = p.parse_args()
    hf_home = ensure_hf_home()
    src = Path(tempfile.mkdtemp(prefix="bench-check-nb-"))
    nb = write_all(src, [args.notebook])[0]
    warm, code = run_check(nb, args.full)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}; notebook {args.notebook}; check{' --full' if args.full else ''}; "
          f"{args.pairs} alternating pairs (warm-up check {warm:.1f} s, exit {code})", flush=True)
    bare, check, ratios = [], [], []
    for i in range(args.pairs):
        b = run_bare(nb, hf_home)
        c, code = run_check(nb, args.full)
        bare.append(b)
        check.append(c)
        ratios.append(c / b)
        print(f"  pair {i + 1}: bare {b:6.1f} s   check {c:6.1f} s (exit {code})   check/bare {c / b:.3f}", flush=True)
    ratio = statistics.median(check) / statistics.median(bare)
    verdict = "PASS" if ratio <= GOAL else "MISS"
    print(f"median bare {statistics.median(bare):.1f} s, median check {statistics.median(check):.1f} s; "
          f"check/bare = {ratio:.3f} (median of pair ratios {statistics.median(ratios):.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f})  (goal <= {GOAL}: {verdict})")
    shutil.rmtree(src, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
