"""What Gradescope's container needs for one submission: wall time and peak memory of `grade gradescope-run`.

    python bench/gradescope_footprint.py [--notebook correct_real_plot] [--runs 2]

Lays out /autograder as Gradescope does (a temporary GRADESCOPE_ROOT with submission/ holding one
fixture notebook; the default runs the assignment's provided plotting code, 36 labelled frames),
runs `grade gradescope-run --workers 1` as a whole process, and samples the resident memory of its
whole process tree (the grader, its worker, the sandboxed kernel) every 0.1 s with psutil. Prints
wall time and peak total RSS per run, and the median. The figures go into bench/RESULTS.md and the
README's Gradescope settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def run_once(notebook: str) -> tuple[float, int, dict]:
    from fixtures.notebooks import build

    root = Path(tempfile.mkdtemp(prefix="bench-gradescope-"))
    (root / "submission").mkdir()
    nbformat.write(build(notebook), str(root / "submission" / "Assignment.ipynb"))
    env = {**os.environ, "GRADESCOPE_ROOT": str(root)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli", "gradescope-run", "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    results = json.loads((root / "results" / "results.json").read_text())
    return seconds, peak, results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebook", default="correct_real_plot")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    times, peaks = [], []
    for i in range(args.runs):
        seconds, peak, results = run_once(args.notebook)
        times.append(seconds)
        peaks.append(peak)
        print(f"run {i + 1}: {seconds:6.1f} s wall, peak RSS of the process tree {peak / 2**30:.2f} GiB, "
              f"score {results['score']:g}, status {results['extra_data']['status']}  "
              f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)
    print(f"median: {statistics.median(times):.1f} s, peak RSS {statistics.median(peaks) / 2**30:.2f} GiB "
          f"(max {max(peaks) / 2**30:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
