"""How much the fast plotting path (grader/execute/fastplot.py) buys, measured side by side.

    python bench/fast_plot.py [--pairs 2] [--check-pairs 3] [--skip-batch] [--skip-check] [--skip-verdicts]
    python bench/fast_plot.py --profile-frame      # where one frame of the provided cell spends its time

1. Batch: 8 notebooks that keep a plotting cell (correct_real_plot: 4 with the provided cell, 4 with
   a harmless variant of it from fixtures/notebooks/plot_variants.py), (a) run one after another with
   bare nbclient in a fresh kernel each (bench/grade_overhead.py's `run_bare`: the environment
   `grade` gives its kernels, no sandbox, no instrumentation, labels drawn) and (b) `grade --workers 1`
   on all 8 (fast path on), alternating a b a b, `--pairs` times. Prints grade/bare per pair and the
   median (goal <= 0.5). Then, once, `grade --workers 1 --full-render` on the same 8: its verdicts
   (status and points of every check of every notebook) must equal the fast run's. Per notebook it
   also prints the time spent outside the student's cells (kernel start, the hidden installs,
   extraction: execution.json's seconds minus its cells'), the part pre-started kernels could save.
2. Check: `grade-check NB` on a notebook whose plotting cell is a harmless variant (`print`) against
   its bare nbclient run, alternating, `--check-pairs` times (goal <= 0.3); prints the p5.gif line.

Whole-process wall times (`time.perf_counter` around each subprocess), one warm-up `grade` first
(golden cache, sandbox probe, page cache); the 1-minute load average is printed with every run
because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
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

BATCH_GOAL, CHECK_GOAL = 0.5, 0.3
BATCH_VARIANTS = ("provided", "if_save", "provided", "print", "provided", "figsize_dpi", "provided", "show")
CHECK_VARIANT = "print"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def write_notebooks(folder: Path, kinds) -> list[Path]:
    import nbformat

    from fixtures.notebooks import build
    from fixtures.notebooks.plot_variants import variant, with_plotting_cells

    from grader.spec.template import is_provided_plotting_cell

    base = build("correct_real_plot")
    paths = []
    for i, kind in enumerate(kinds):
        path = folder / f"nb{i}_{kind}.ipynb"
        source = variant(kind)
        assert is_provided_plotting_cell(source) == (kind == "provided"), kind  # the batch is half variants
        nbformat.write(with_plotting_cells(base, [source]), str(path))
        paths.append(path)
    return paths


def run_grade(paths: list[Path], *extra: str) -> tuple[float, Path]:
    out = Path(tempfile.mkdtemp(prefix="bench-fastplot-")) / "g"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader.cli", *map(str, paths), "--out", str(out), "--workers", "1",
                    *extra], check=True, capture_output=True)
    return time.perf_counter() - t, out


def verdicts(out: Path) -> dict[str, list]:
    found = {}
    for results in sorted(out.glob("*/results.json")):
        data = json.loads(results.read_text())
        found[results.parent.name] = [(t["name"], t.get("status"), t["score"]) for t in data["tests"]]
    return found


def outside_cells(out: Path) -> list[float]:
    """Seconds of each execution not spent in the student's cells (kernel start, installs, extraction)."""
    spans = []
    for path in sorted(out.glob("*/execution.json")):
        rec = json.loads(path.read_text())
        spans.append(rec["seconds"] - sum(c["seconds"] for c in rec["cells"]))
    return spans


def batch(args, hf_home: Path, src: Path) -> None:
    paths = write_notebooks(src, BATCH_VARIANTS)
    print(f"batch: {len(paths)} notebooks ({', '.join(BATCH_VARIANTS)}); {args.pairs} alternating pairs", flush=True)
    ratios, fast_outs = [], []
    for i in range(args.pairs):
        t_bare = 0.0
        for p in paths:
            t_bare += run_bare(p, hf_home)
        bare_load = load()
        t_fast, out = run_grade(paths)
        fast_outs.append(out)
        ratios.append(t_fast / t_bare)
        print(f"  pair {i + 1}: bare {t_bare:6.1f} s ({bare_load})   grade {t_fast:6.1f} s ({load()})   "
              f"grade/bare {t_fast / t_bare:.3f}", flush=True)
    med = statistics.median(ratios)
    print(f"batch: median grade/bare = {med:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})  "
          f"(goal <= {BATCH_GOAL}: {'PASS' if med <= BATCH_GOAL else 'MISS'})", flush=True)
    spans = outside_cells(fast_outs[-1])
    print(f"  outside the student's cells, per notebook: median {statistics.median(spans):.1f} s "
          f"(min {min(spans):.1f}, max {max(spans):.1f})", flush=True)
    if not args.skip_verdicts:
        t_full, full = run_grade(paths, "--full-render")
        same = verdicts(full) == verdicts(fast_outs[-1])
        scores = [sum(s for _, _, s in v) for v in verdicts(full).values()]
        print(f"  grade --full-render: {t_full:.1f} s ({load()}); verdicts identical to the fast run's: {same} "
              f"(scores {scores})", flush=True)
    for out in fast_outs:
        shutil.rmtree(out.parent, ignore_errors=True)


def run_check(nb: Path) -> tuple[float, int, str]:
    out = Path(tempfile.mkdtemp(prefix="bench-fastplot-check-"))
    try:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "grader.run.selfcheck", str(nb), "--out", str(out)],
                              capture_output=True, text=True)
        gif = next((line.strip() for line in proc.stdout.splitlines() if "p5.gif" in line), "(no p5.gif line)")
        return time.perf_counter() - t, proc.returncode, gif
    finally:
        shutil.rmtree(out, ignore_errors=True)


def check(args, hf_home: Path, src: Path) -> None:
    nb = write_notebooks(src, [CHECK_VARIANT])[0]
    print(f"check: grade-check on a notebook whose plotting cell is the '{CHECK_VARIANT}' variant; "
          f"{args.check_pairs} alternating pairs", flush=True)
    ratios = []
    for i in range(args.check_pairs):
        b = run_bare(nb, hf_home)
        bare_load = load()
        c, code, gif = run_check(nb)
        ratios.append(c / b)
        print(f"  pair {i + 1}: bare {b:6.1f} s ({bare_load})   check {c:6.1f} s (exit {code}, {load()})   "
              f"check/bare {c / b:.3f}", flush=True)
    print(f"  {gif}")
    med = statistics.median(ratios)
    print(f"check: median check/bare = {med:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})  "
          f"(goal <= {CHECK_GOAL}: {'PASS' if med <= CHECK_GOAL else 'MISS'})", flush=True)


def profile_frame() -> None:
    """Frames of the provided cell (the miniature's layer-35 projection, 3 frames a run) in this process:
    seconds a frame with each combination of fastplot's four changes (unprofiled, best of 3 round-robin runs), then
    where savefig's time goes in a full and a fast frame (cProfile, cumulative, matplotlib's functions)."""
    import cProfile
    import io
    import itertools
    import pstats

    os.environ["MPLBACKEND"] = "Agg"
    import imageio
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from matplotlib.backends import backend_agg

    from grader.execute import fastplot
    from grader.spec.pack import load_pack
    from grader.spec.template import provided_plotting_cell

    PROVIDED_PLOTTING_CELL = provided_plotting_cell()

    root = Path(__file__).resolve().parents[1]
    with np.load(load_pack().golden_dir / "projections.npz") as z:
        pcas = {int(k): torch.from_numpy(z[k]).float() for k in z.files}
    cell = compile(PROVIDED_PLOTTING_CELL.replace("range(num_layers)", "[35, 35, 35]"), "<cell>", "exec")
    work = Path(tempfile.mkdtemp(prefix="bench-frame-"))
    os.chdir(work)
    model = type("M", (), {"config": type("C", (), {"num_hidden_layers": 36})})

    def per_frame(prof=None) -> float:
        ns = {"plt": plt, "torch": torch, "imageio": imageio, "np": np, "pcas": pcas, "model": model}
        t = time.perf_counter()
        if prof is not None:
            prof.enable()
        exec(cell, ns)
        if prof is not None:
            prof.disable()
        return (time.perf_counter() - t) / 3

    def profiled(label: str) -> None:
        prof = cProfile.Profile()
        print(f"{label}: {per_frame(prof):.3f} s a frame under cProfile ({load()})")
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("cumulative").print_stats(
            r"savefig|draw_idle|_print_pil|backend_agg.*draw$|draw_text|_draw_text_glyphs|_get_layout|"
            r"get_text_width_height_descent|plot_surface|axes3d.*text|_encode_tile|collections.*draw")
        print("\n".join(line for line in stream.getvalue().splitlines() if "/" in line or "ncalls" in line))

    per_frame()  # warm: fonts, mplot3d
    profiled("full render")
    from mpl_toolkits.mplot3d import art3d

    classes = (backend_agg.RendererAgg, backend_agg.FigureCanvasAgg, art3d.Text3D)
    originals = {(c, n): c.__dict__.get(n) for c in classes for n in list(c.__dict__) + ["draw_idle"]}
    fastplot.install({"nonce": "bench"})  # matplotlib is imported already: patched at once
    fast_module = sys.modules[fastplot.FAST_MODULE]
    groups = {"labels": ["RendererAgg.draw_text"], "tight": ["Text3D.draw"],
              "metrics": ["RendererAgg.get_text_width_height_descent"],
              "idle": [k for k in fast_module.patched if k.startswith("FigureCanvasAgg.")]}
    patched = {(next(c for c in classes if c.__name__ == k.split(".")[0]), k.split(".")[1]): new
               for k, new in fast_module.patched.items()}

    def use(on: set[str]) -> None:
        for group, keys in groups.items():
            for key in keys:
                owner, name = next(o for o in patched if f"{o[0].__name__}.{o[1]}" == key)
                new = patched[(owner, name)] if group in on else originals.get((owner, name))
                if new is None:
                    delattr(owner, name) if name in owner.__dict__ else None
                else:
                    setattr(owner, name, new)

    combos = [set(on) for n in range(len(groups) + 1) for on in itertools.combinations(groups, n)]
    best = [float("inf")] * len(combos)
    for _ in range(3):  # round-robin, so that a change in the machine's load hits every combination alike
        for i, on in enumerate(combos):
            use(on)
            best[i] = min(best[i], per_frame())
    print(f"seconds a frame, best of 3 round-robin runs of 3 frames ({load()}):")
    for on, b in zip(combos, best):
        print(f"  {' + '.join(g for g in groups if g in on) or 'none (a full render)':<32} {b:.3f} s   "
              f"{best[0] / b:.2f}x")
    use(set(groups))
    profiled("fast path")
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    from miniature.hf_cache import ensure_hf_home

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=2, help="alternating bare/grade pairs of the 8-notebook batch")
    p.add_argument("--check-pairs", type=int, default=3)
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument("--skip-check", action="store_true")
    p.add_argument("--skip-verdicts", action="store_true", help="no --full-render run of the batch")
    p.add_argument("--profile-frame", action="store_true")
    args = p.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {load()}", flush=True)
    if args.profile_frame:
        profile_frame()
        return 0
    hf_home = ensure_hf_home()
    src = Path(tempfile.mkdtemp(prefix="bench-fastplot-nb-"))
    warm_dir = src / "warm"
    warm_dir.mkdir()
    warm, out = run_grade(write_notebooks(warm_dir, ["print"]))
    shutil.rmtree(out.parent, ignore_errors=True)
    print(f"warm-up grade: {warm:.1f} s", flush=True)
    if not args.skip_batch:
        batch(args, hf_home, src)
    if not args.skip_check:
        check(args, hf_home, src)
    shutil.rmtree(src, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
