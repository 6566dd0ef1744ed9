"""How long `grade rejudge` takes beside the batch it re-judges, measured side by side in one run.

    python bench/rejudge_speed.py [--workers 2] [--pairs 2] [--names NAME ...]

1. Writes the fixture catalog (fixtures/notebooks, all 43 by default) into a temporary folder and grades it
   once: `grade SRC --out OUT --workers W --no-report` (wall time: the batch's grading time).
2. `--pairs` times, on fresh copies of OUT: `grade rejudge COPY --workers 1` and `grade rejudge COPY
   --workers W`, each timed; after each, every results.json must equal OUT's apart from timings
   (bench/same_results.py), so a fast rejudge that judged differently does not count.
3. Prints rejudge / batch for each run and the median per worker count (goal: under 0.1, issue 16).

Whole-process wall times (`time.perf_counter` around each subprocess); the 1-minute load average is
printed with every run because the machine is shared.
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

GOAL = 0.1
REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def timed(*args: str) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"grade {' '.join(args)} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="the batch's --workers, and the parallel rejudge's")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--names", nargs="*", help="catalog notebooks (default: all)")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    from fixtures.notebooks import NAMES, write_all

    work = Path(tempfile.mkdtemp(prefix="bench-rejudge-"))
    try:
        src, out = work / "src", work / "out"
        names = list(args.names or NAMES)
        write_all(src, names)
        batch = timed(str(src), "--out", str(out), "--workers", str(args.workers), "--no-report")
        print(f"batch: grade {len(names)} notebooks --workers {args.workers}: {batch:.1f} s ({load()})", flush=True)
        ratios: dict[int, list[float]] = {1: [], args.workers: []}
        for pair in range(args.pairs):
            for workers in ratios:
                copy = work / f"rejudge-{pair}-{workers}"
                shutil.copytree(out, copy)
                seconds = timed("rejudge", str(copy), "--workers", str(workers))
                same = subprocess.run([sys.executable, str(REPO / "bench" / "same_results.py"), str(out), str(copy)],
                                      capture_output=True, text=True)
                if same.returncode != 0:
                    raise SystemExit(f"rejudge --workers {workers} judged differently:\n{same.stdout[-3000:]}")
                ratios[workers].append(seconds / batch)
                print(f"  pair {pair + 1}: rejudge --workers {workers}: {seconds:.1f} s, rejudge/batch "
                      f"{seconds / batch:.3f}, results.json the same as the batch's ({load()})", flush=True)
                shutil.rmtree(copy, ignore_errors=True)
        for workers, values in ratios.items():
            med = statistics.median(values)
            print(f"rejudge --workers {workers} / batch: median {med:.3f} (min {min(values):.3f}, max {max(values):.3f}) "
                  f"(goal < {GOAL}: {'PASS' if med < GOAL else 'MISS'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
