"""The assignment's plotting code, as functions: one frame per layer, animated as tokens.gif.

`draw_sphere` and `save_frame` reproduce the provided cell line for line (translucent sphere, blue
points, one 3-D text label per token, box aspect 1:1:1, dpi 100, tight bbox). Frames are drawn in
worker processes: hundreds of 3-D labels make each frame slow (about 2.5 s on one core here).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

GIF_FRAME_MS = 1000  # the assignment passes duration=1.0, meant as one second per frame


def draw_sphere(ax, points: np.ndarray, labels: list[str] | None = None, color: str = "b") -> None:
    """The provided plotting code's drawing on a 3-D axis; points [3, N] on the unit sphere."""
    x, y, z = points[0], points[1], points[2]
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 100), np.linspace(0, np.pi, 100), indexing="ij")
    ax.plot_surface(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="c", alpha=0.1, edgecolor="none")
    ax.scatter(x, y, z, color=color, s=50)
    for xi, yi, zi, label in zip(x, y, z, labels or []):
        ax.text(xi, yi, zi, label, fontsize=10, color="k")
    ax.set_box_aspect([1, 1, 1])


def save_frame(points: np.ndarray, path: str, labels: list[str] | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(111, projection="3d")
    draw_sphere(ax, points, labels)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _pad_to(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Tight bounding boxes differ per frame; pad with white so every GIF frame has one size."""
    out = np.full((shape[0], shape[1], frame.shape[2]), 255, dtype=frame.dtype)
    out[: frame.shape[0], : frame.shape[1]] = frame
    return out


def write_gif(projections: list[np.ndarray], directory: Path, labels: list[str] | None = None,
              workers: int | None = None) -> Path:
    """Draw one frame per layer (projections[i] is [3, N]) into directory and animate tokens.gif."""
    import imageio.v2 as imageio

    directory.mkdir(parents=True, exist_ok=True)
    paths = [str(directory / f"frame_{i}.png") for i in range(len(projections))]
    workers = workers or min(len(paths), os.cpu_count() or 1)
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # torch is loaded; forking it can deadlock
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            list(pool.map(save_frame, projections, paths, [labels] * len(paths)))
    else:
        for points, path in zip(projections, paths):
            save_frame(points, path, labels)
    frames = [imageio.imread(p) for p in paths]
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    gif = directory / "tokens.gif"
    imageio.mimsave(gif, [_pad_to(f, (h, w)) for f in frames], duration=GIF_FRAME_MS, loop=0)
    for p in paths:
        os.remove(p)
    return gif
