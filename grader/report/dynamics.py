"""The reference panel: what a real trained model does to the assignment's prompt, for the TA.

The grader runs students' notebooks on a miniature, randomly initialised Qwen3-4B, whose clustering
metrics say nothing about trained-model dynamics. Students describe what the real Qwen3-4B did on
Colab. To judge their answers a TA sees instead `dynamics.json` (beside this file), computed once by
`python -m reference.dynamics` from a small real model (SmolLM2-135M-Instruct) on the same prompt,
and always labelled with that model. Reading and drawing it needs neither torch nor the model.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

PANEL_PATH = Path(__file__).with_name("dynamics.json")
REQUIRED = ("model", "num_layers", "n_tokens", "layers", "spheres")
COSINE_COLOR = "#1565c0"
NORM_COLOR = "#ef6c00"
POINT_COLOR = "#3949ab"


def load_panel(path: str | Path | None = None) -> dict:
    """The reference panel JSON (default: grader/report/dynamics.json); no torch, no model."""
    path = Path(path) if path is not None else PANEL_PATH
    panel = json.loads(path.read_text())
    missing = [k for k in REQUIRED if k not in panel]
    if missing:
        raise ValueError(f"{path}: not a reference panel (missing {', '.join(missing)})")
    return panel


def title(panel: dict) -> str:
    """'SmolLM2-135M-Instruct (a real trained model) on the assignment's prompt'."""
    return f"{panel['model']['name']} (a real trained model) on the assignment's prompt"


def caption(panel: dict) -> str:
    """One line for the report under the figure: which model, how many layers and tokens."""
    m = panel["model"]
    return (f"{m['hub_id']} ({panel['num_layers']} layers, {panel['n_tokens']} tokens of the assignment's prompt; "
            f"{m.get('note', '')}). Not the assignment's model and not the grader's miniature: shown so answers can be "
            f"read against real trained-model dynamics.")


def summary_rows(panel: dict, max_rows: int = 12) -> list[dict]:
    """A few layers for a table: every k-th layer, the last one and the layer where the mean pairwise
    cosine jumps most; each {"layer": n, "cosine": "0.675", "outlier": "155.9"} (token 0 norm / median)."""
    layers = panel["layers"]
    n = len(layers)
    step = max(1, -(-n // (max_rows - 2)))  # ceil: room for the last layer and the jump
    picked = set(range(0, n, step)) | {n - 1}
    if n > 1:
        jumps = [layers[i]["mean_pairwise_cosine"] - layers[i - 1]["mean_pairwise_cosine"] for i in range(1, n)]
        picked.add(1 + int(np.argmax(jumps)))
    return [{"layer": layers[i]["layer"], "cosine": f"{layers[i]['mean_pairwise_cosine']:.3f}",
             "outlier": f"{layers[i]['token0_norm_over_median']:.1f}"} for i in sorted(picked)]


def _line_plots(fig, panel: dict) -> None:
    layers = panel["layers"]
    xs = [row["layer"] for row in layers]
    cos = [row["mean_pairwise_cosine"] for row in layers]
    ratio = [row["token0_norm_over_median"] for row in layers]
    ax = fig.add_axes((0.06, 0.2, 0.2, 0.58))
    ax.plot(xs, cos, "o-", color=COSINE_COLOR, ms=2.5, lw=1.2)
    ax.set_ylim(min(0.0, min(cos)) - 0.02, 1.0)
    ax.set_title("mean pairwise cosine", fontsize=8)
    ax2 = fig.add_axes((0.33, 0.2, 0.2, 0.58))
    ax2.semilogy(xs, ratio, "o-", color=NORM_COLOR, ms=2.5, lw=1.2)
    ax2.set_title("token 0 norm / median norm", fontsize=8)
    for a in (ax, ax2):
        a.set_xlabel("layer", fontsize=7)
        a.tick_params(labelsize=6)
        a.grid(alpha=0.3, lw=0.5)


def _spheres(fig, panel: dict) -> None:
    shown = sorted(panel["spheres"], key=int)
    width = 0.44 / max(len(shown), 1)
    for k, layer in enumerate(shown):
        pts = np.asarray(panel["spheres"][layer], dtype=float)  # [3, N]
        ax = fig.add_axes((0.55 + k * width, 0.06, width, 0.78), projection="3d")
        ax.scatter(pts[0], pts[1], pts[2], s=1.5, color=POINT_COLOR, depthshade=False, linewidths=0)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_zlim(-1, 1)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        ax.set_title(f"layer {layer}", fontsize=8, pad=0)


def _figure(width_in: float, height_in: float):
    """A bare figure (no pyplot state; saved through Agg). projection="3d" needs no import since matplotlib 3.2."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in))


def draw_panel(panel: dict) -> str:
    """PNG data URI: cosine and token-0 norm ratio per layer, and the sphere at three layers."""
    fig = _figure(7.6, 2.3)
    fig.suptitle(title(panel), fontsize=9, y=0.98)
    _line_plots(fig, panel)
    _spheres(fig, panel)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
