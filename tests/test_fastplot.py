"""Plotting cells drawn fast (grader/execute/fastplot.py), for real: one notebook that runs the
provided plotting cell (two layers) and five harmless variants of it (fixtures/notebooks/plot_variants.py,
one layer each), a cell that reads a canvas's pixels after `plt.savefig`, and a plotting cell with a label
that is bad mathtext, graded twice in real sandboxed kernels on the miniature: by default (labels
drawn blank) and with `--full-render`. The two runs agree on everything but the labels' pixels."""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from PIL import Image

LAYERS = {"provided": "[0, 35]"}  # the variants draw layer 35 only: the full-render run stays cheap
BAD_LABEL = 'ax.text(0, 0, 0, r"$\\frac{$", fontsize=10)  # bad mathtext: matplotlib raises while saving'

BUFFER_CELL = '''\
fig = plt.figure(figsize=(6, 6))
ax = fig.add_subplot(111, projection="3d")
for i in range(20):
    ax.text(i / 20, 0, 0, f"token {i}")
plt.savefig("buffer_frame.png", bbox_inches="tight")
buffer_shape = list(np.asarray(fig.canvas.buffer_rgba()).shape)  # what pyplot's draw_idle left on the canvas
plt.close(fig)
print("canvas buffer", buffer_shape)
'''

SUMMARY_CELL = '''\
import glob, json
from PIL import Image

def _size(path):
    with Image.open(path) as im:
        return [im.n_frames if path.endswith(".gif") else 1, *im.size]

print(json.dumps({"frames": seen, "frame_sizes": {k: [_size(f) for f in v] for k, v in seen.items()},
                  "gifs": {p: _size(p) for p in sorted(glob.glob("*.gif"))},
                  "images": [list(a.shape) for a in images], "buffer": buffer_shape}, sort_keys=True))
'''


def _notebook():
    from fixtures.notebooks import build
    from fixtures.notebooks.plot_variants import VARIANTS, variant, with_plotting_cells

    cells = ["seen = {}"]
    for kind in VARIANTS:
        prefix = "" if kind == "provided" else f"{kind}_"  # the provided cell writes tokens.gif
        cells.append(variant(kind, keys=LAYERS.get(kind, "[35]"), prefix=prefix) + f"\nseen[{kind!r}] = list(frames)")
    cells.append(BUFFER_CELL)
    bad = variant("provided", keys="[0]", prefix="bad_")
    cells.append(bad.replace("    ax.set_box_aspect", f"    {BAD_LABEL}\n    ax.set_box_aspect"))
    cells.append(SUMMARY_CELL)
    return with_plotting_cells(build("correct_real_plot"), cells)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{"fast": out/<id>, "full": out/<id>}: `grade` by default and with --full-render."""
    from grader.cli import main

    src = tmp_path_factory.mktemp("fastplot-nb")
    nbformat.write(_notebook(), str(src / "variants.ipynb"))
    out = {}
    for name, extra in (("fast", []), ("full", ["--full-render"])):
        graded = tmp_path_factory.mktemp(f"fastplot-{name}") / "grading"
        assert main([str(src / "variants.ipynb"), "--out", str(graded), "--workers", "1", *extra]) == 0
        out[name] = next(p.parent for p in graded.glob("*/results.json"))
    return out


def _execution(folder):
    return json.loads((folder / "execution.json").read_text())


def _streams(folder) -> list[tuple[int, str, str]]:
    """(cell index, stream name, text) of every stream output of the executed notebook."""
    nb = nbformat.read(folder / "executed.ipynb", as_version=4)
    return [(i, o.name, o.text) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "stream"]


def _summary(folder) -> dict:
    nb = nbformat.read(folder / "executed.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("import glob, json"))
    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return json.loads(text)


def test_the_fast_run_drew_the_3d_labels_blank_and_the_full_render_did_not(runs):
    fast, full = (_execution(runs[k]).get("environment") or {} for k in ("fast", "full"))
    # counted once per label drawn: at least the 404 labels of each of the 7 saved frames
    assert fast.get("counts", {}).get("plot.labels", 0) >= 7 * 404, fast
    assert "plot.labels" not in full.get("counts", {}), full
    assert not [e for e in _execution(runs["fast"])["probe_errors"] if "fastplot" in e]
    for gif in sorted((runs["full"] / "files").glob("*.gif")):
        with Image.open(gif) as a, Image.open(runs["fast"] / "files" / gif.name) as b:
            assert (a.n_frames, a.size) == (b.n_frames, b.size), gif.name
            assert not np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))), \
                f"{gif.name}: the fast run's frames equal the full render's; were the labels drawn?"


def test_frames_sizes_variables_and_errors_are_those_of_a_full_render(runs):
    fast, full = _summary(runs["fast"]), _summary(runs["full"])
    assert fast == full
    assert sorted(full["frames"]) == ["figsize_dpi", "if_save", "print", "provided", "show", "subfolder"]
    assert full["frames"]["provided"] == ["frame_0.png", "frame_35.png"]
    assert full["frames"]["subfolder"] == ["frames/subfolder_frame_35.png"]
    assert full["gifs"]["tokens.gif"][0] == 2 and len(full["gifs"]) == 6, full["gifs"]
    assert full["frame_sizes"]["figsize_dpi"] != full["frame_sizes"]["provided"]  # the variant did change the size
    assert full["buffer"] == [600, 600, 4], full["buffer"]  # the canvas at the figure's own size, redrawn
    errors = [[(c["index"], c["ename"], c["evalue"]) for c in _execution(runs[k])["cells"] if c["ename"]]
              for k in ("fast", "full")]
    assert errors[0] == errors[1] and len(errors[1]) == 1 and errors[1][0][1] == "ValueError", errors
    assert _streams(runs["fast"]) == _streams(runs["full"])


def test_verdicts_are_those_of_a_full_render_and_the_report_says_why_the_labels_are_blank(runs):
    fast, full = (json.loads((runs[k] / "results.json").read_text()) for k in ("fast", "full"))
    assert [(t["name"], t.get("status"), t["score"]) for t in fast["tests"]] == \
           [(t["name"], t.get("status"), t["score"]) for t in full["tests"]]
    assert fast["score"] == full["score"]
    note = "re-ran the plotting cell with its 3-D token labels drawn blank"
    assert note in (runs["fast"] / "report.html").read_text()
    assert note not in (runs["full"] / "report.html").read_text()


IN_A_FRESH_PROCESS = '''
import json, sys, warnings
from grader.execute import fastplot
fastplot.install({"nonce": "t"})  # before matplotlib is imported: patched when the Agg backend is
assert "matplotlib" not in sys.modules
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig = plt.figure(figsize=(6, 6))
ax = fig.add_subplot(111, projection="3d")
label = ax.text(0, 0, 0, "token")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    label.set_rasterized(True)  # Text3D.draw still says it supports rasterization
plt.savefig(sys.argv[1], bbox_inches="tight")
print(json.dumps({"patched": sorted(sys.modules[fastplot.FAST_MODULE].patched),
                  "warnings": [str(w.message) for w in caught],
                  "buffer": list(__import__("numpy").asarray(fig.canvas.buffer_rgba()).shape)}))
'''


def test_installed_before_matplotlib_it_patches_on_import_and_keeps_what_artists_declare(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", IN_A_FRESH_PROCESS, str(tmp_path / "f.png")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["patched"] == sorted(
        ["Text3D.draw", "RendererAgg.draw_text", "RendererAgg.get_text_width_height_descent",
         "FigureCanvasAgg.draw_idle", "FigureCanvasAgg.draw", "FigureCanvasAgg.buffer_rgba",
         "FigureCanvasAgg.tostring_argb", "FigureCanvasAgg.copy_from_bbox", "FigureCanvasAgg.restore_region",
         "FigureCanvasAgg.get_renderer"]), found
    assert found["warnings"] == [] and found["buffer"] == [600, 600, 4], found
