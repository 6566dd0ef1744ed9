"""Per-layer clustering metrics of the residual stream on the sphere (what a TA compares answers to)."""

from __future__ import annotations

import numpy as np

from grader.spec.geometry import align_signs, token_angles


def mean_pairwise_cosine(points: np.ndarray) -> float:
    """Mean cosine over distinct token pairs of unit columns points [3, N]; 1.0 = one cluster."""
    n = points.shape[1]
    total = np.asarray(points, np.float64).sum(axis=1)  # [3]
    return float((total @ total - n) / (n * (n - 1)))


def layer_metrics(resid: list[np.ndarray], singular_values: list[np.ndarray], spheres: list[np.ndarray]) -> list[dict]:
    """One dict per layer from resid_pre [N, d], its singular values and its sphere points [3, N]."""
    rows = []
    for n, (x, s, p) in enumerate(zip(resid, singular_values, spheres)):
        norms = np.linalg.norm(x, axis=1)  # [N]
        moved = None
        if n > 0:
            aligned, _ = align_signs(spheres[n - 1], p)
            moved = float(token_angles(spheres[n - 1], aligned).mean())
        rows.append(
            {
                "layer": n,
                "singular_values_top5": [float(v) for v in s[:5]],
                "mean_pairwise_cosine": mean_pairwise_cosine(p),
                "token0_norm_over_median": float(norms[0] / np.median(norms)),
                "mean_angle_moved_deg": moved,
            }
        )
    return rows
