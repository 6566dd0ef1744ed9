"""Small figures for the HTML reports, drawn with matplotlib (Agg) and returned as PNG data URIs.

Every figure is built on a bare `matplotlib.figure.Figure` (no pyplot state, safe in worker
threads), kept small, and drawn without the 404 token labels so a whole report builds in about a
second. Inline SVG for the class index lives in grader/report/index.py; it needs no matplotlib.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PASS_COLOR = "#2e7d32"
FAIL_COLOR = "#c62828"
MEDIAN_COLOR = "#1565c0"
P95_COLOR = "#ef6c00"
FLOOR_DEG = 1e-4  # angles below this are drawn on the floor of the log axis


def png_data_uri(data: bytes) -> str:
    """'data:image/png;base64,...' for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(width_in: float, height_in: float):
    """A bare Agg figure (no pyplot), with the 3-D projection registered."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401 - registers projection="3d"

    return Figure(figsize=(width_in, height_in))


def _to_uri(fig, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return png_data_uri(buf.getvalue())


# --- projection error per layer ---------------------------------------------------------------


def projection_errors(layers: Sequence, n_layers: int, median_threshold: float,
                      p95_threshold: float, reference: str) -> str:
    """Median and 95th-percentile token angle per layer on a log axis, with the two pass thresholds.

    `layers` are the judge's LayerProjection verdicts (layer, median_deg, p95_deg, passed).

    Failed layers get a red band; layers the grader could not measure get an x on the floor.
    """
    fig = _figure(7.6, 2.5)
    ax = fig.add_axes((0.075, 0.2, 0.72, 0.7))
    xs = np.arange(n_layers)
    med = np.full(n_layers, np.nan)
    p95 = np.full(n_layers, np.nan)
    for lp in layers:
        if 0 <= lp.layer < n_layers:
            if lp.median_deg is not None:
                med[lp.layer] = max(lp.median_deg, FLOOR_DEG)
            if lp.p95_deg is not None:
                p95[lp.layer] = max(lp.p95_deg, FLOOR_DEG)
            if not lp.passed:
                ax.axvspan(lp.layer - 0.5, lp.layer + 0.5, color=FAIL_COLOR, alpha=0.12, lw=0)
    judged = {lp.layer for lp in layers if lp.median_deg is not None}
    unmeasured = [n for n in range(n_layers) if n not in judged]
    ax.axhline(median_threshold, color=MEDIAN_COLOR, ls="--", lw=1)
    ax.axhline(p95_threshold, color=P95_COLOR, ls="--", lw=1)
    ax.plot(xs, p95, "^-", color=P95_COLOR, ms=3.5, lw=1.2, label="95th percentile")
    ax.plot(xs, med, "o-", color=MEDIAN_COLOR, ms=3.5, lw=1.2, label="median")
    if unmeasured:
        ax.plot(unmeasured, [FLOOR_DEG * 1.6] * len(unmeasured), "x", color="#555", ms=5, label="not measured")
    ax.set_yscale("log")
    ax.set_ylim(FLOOR_DEG, 200)
    ax.set_xlim(-0.7, n_layers - 0.3)
    ax.set_xticks(range(0, n_layers, 5 if n_layers > 12 else 1))
    ax.set_yticks([1e-4, 1e-2, 1, 5, 90])
    ax.set_yticklabels(["≤0.0001°", "0.01°", "1°", "5°", "90°"])
    ax.set_xlabel("layer", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", color="#ddd", lw=0.5)
    ref_words = {"own_captures": "PCA of the student's own captures", "golden": "reference PCA (resid_pre)"}
    ax.set_title(f"Token angle to the {ref_words.get(reference, reference)}", fontsize=8.5, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color=MEDIAN_COLOR, ls="--", lw=1), Line2D([], [], color=P95_COLOR, ls="--", lw=1)]
    labels += [f"median pass ≤ {median_threshold:g}°", f"p95 pass ≤ {p95_threshold:g}°"]
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False, bbox_to_anchor=(0.995, 0.55))
    return _to_uri(fig, 100)


# --- spheres ------------------------------------------------------------------------------------


def _token_colors(n: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 1.0, max(n, 1)))


def draw_sphere_light(ax, points: np.ndarray, colors: np.ndarray, mesh: int = 30) -> None:
    """reference.plotting.draw_sphere's look (translucent cyan sphere, points, 1:1:1 box) without
    the labels, on a 30 x 30 mesh instead of 100 x 100 and with small points: about 4x faster."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, mesh), np.linspace(0, np.pi, mesh), indexing="ij")
    ax.plot_surface(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="c", alpha=0.1, edgecolor="none")
    ax.scatter(points[0], points[1], points[2], color=colors, s=5, depthshade=False)
    ax.set_box_aspect([1, 1, 1], zoom=1.3)
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.set_axis_off()


def _sphere_axis(fig, position: int, points: np.ndarray | None, title: str, empty_text: str) -> None:
    ax = fig.add_subplot(2, 3, position, projection="3d")
    ax.set_title(title, fontsize=8, pad=0)
    if points is None:
        ax.set_axis_off()
        ax.text2D(0.5, 0.5, empty_text, ha="center", va="center", fontsize=8, color="#777", transform=ax.transAxes)
        return
    draw_sphere_light(ax, points, _token_colors(points.shape[1]))


def spheres(panels: Sequence, captions: Sequence[str]) -> str:
    """Student (top row) against reference (bottom row) at up to three layers, same token colours.

    `panels` are the judge's SpherePanels (layer, student [3, N] or None, reference [3, N]); `captions`
    go under the student's spheres, one line per comparison ("<0.01° from own-capture PCA (mlp_out)")."""
    lines = max([str(c).count("\n") for c in captions] or [0])  # extra title lines under "student, layer N"
    fig = _figure(7.2, 4.6 + 0.25 * lines)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.95 - 0.05 * lines, wspace=0.0, hspace=0.08)
    for i, (panel, text) in enumerate(zip(panels[:3], captions)):
        caption = f"student, layer {panel.layer}" + (f"\n{text}" if text else "")
        _sphere_axis(fig, i + 1, panel.student, caption, "no projection\nfor this layer")
        _sphere_axis(fig, i + 4, panel.reference, f"reference, layer {panel.layer}", "no reference")
    return _to_uri(fig, 90)


# --- images -------------------------------------------------------------------------------------


def first_frame_png(path: Path, max_side: int = 480) -> str:
    """The first frame of an image (a GIF too large to inline), downscaled, as a PNG data URI."""
    from PIL import Image

    with Image.open(path) as im:
        im.seek(0)
        frame = im.convert("RGB")
    frame.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    frame.save(buf, format="PNG", optimize=True)
    return png_data_uri(buf.getvalue())
