"""Exact PCA to three components, projection onto the unit sphere, and sign-aware comparison.

Sign convention (PCA fixes each component only up to sign): component k is flipped so that the
token with the largest |score| on it has a positive score (scikit-learn's `svd_flip`, u-based).
Comparisons never rely on it: `align_signs` flips each of a student's components to best match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

N_COMPONENTS = 3


@dataclass(frozen=True)
class PCA3:
    components: np.ndarray  # [3, d] float64, orthonormal rows
    singular_values: np.ndarray  # [min(N, d)] float64, all of them, descending
    scores: np.ndarray  # [N, 3] float64, centred data projected on the components

    @property
    def sphere(self) -> np.ndarray:
        """[3, N] float32: each token's 3-D projection scaled to unit norm (the assignment's output)."""
        return to_sphere(self.scores.T)


def pca3(x: np.ndarray) -> PCA3:
    """Exact PCA of x [N, d]: SVD of the mean-centred data in float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a [N, d] matrix of token representations, got shape {x.shape}")
    centred = x - x.mean(axis=0, keepdims=True)  # [N, d]
    with threadpool_limits(1, user_api="blas"):  # a threaded BLAS makes this small SVD 25x slower here
        u, s, vt = np.linalg.svd(centred, full_matrices=False)  # u [N, r], s [r], vt [r, d]
    top = np.argmax(np.abs(u[:, :N_COMPONENTS]), axis=0)  # [3] token with the largest |score|
    signs = np.sign(u[top, np.arange(N_COMPONENTS)])  # [3]
    signs[signs == 0] = 1.0
    components = vt[:N_COMPONENTS] * signs[:, None]  # [3, d]
    return PCA3(components=components, singular_values=s, scores=centred @ components.T)


def to_sphere(points: np.ndarray) -> np.ndarray:
    """[3, N] -> [3, N] float32 with each column (token) of unit norm; a zero column stays zero."""
    points = np.asarray(points, dtype=np.float64)
    norms = np.linalg.norm(points, axis=0, keepdims=True)  # [1, N]
    return (points / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def align_signs(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip each row (component) of other [3, N] to agree best with reference [3, N].

    Returns (aligned [3, N], signs [3]).
    """
    dots = np.sum(np.asarray(reference, np.float64) * np.asarray(other, np.float64), axis=1)  # [3]
    signs = np.where(dots < 0, -1.0, 1.0)
    return other * signs[:, None], signs


def token_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between matching columns of a and b ([3, N] each), after normalising."""
    a = to_sphere(a).astype(np.float64)
    b = to_sphere(b).astype(np.float64)
    sin = np.linalg.norm(np.cross(a, b, axis=0), axis=0)  # [N]
    cos = np.sum(a * b, axis=0)  # [N]
    return np.degrees(np.arctan2(sin, cos))  # accurate for tiny angles, unlike arccos
