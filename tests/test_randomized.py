"""grader/judge/randomized.py: on a flat spectrum, what torch.pca_lowrank(q=3) gives passes; the usual PCA
mistakes do not. The data: 300 tokens in 96 dimensions whose top singular values are a few percent apart, as
on a trained model's layers (tests on real weights: bench/agreement.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.judge import randomized
from grader.judge.projections import PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG
from grader.spec.geometry import pca3, to_sphere, token_angles, align_signs


@pytest.fixture(scope="module")
def flat() -> np.ndarray:
    rng = np.random.default_rng(7)
    n, d = 300, 96
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = 10.0 * 0.97 ** np.arange(d)  # S_k / S_k+1 = 1.03: exact PCA is barely pinned down
    scores = rng.standard_normal((n, d))
    scores -= scores.mean(axis=0)
    scores = np.linalg.qr(scores)[0] * spectrum  # [N, d], orthogonal columns of the chosen norms
    return scores @ q.T + 3.0  # [N, d], an offset the student must centre away


def sphere_of(points: np.ndarray) -> np.ndarray:
    return to_sphere(points).astype(np.float64)  # [3, N]


def judge(x: np.ndarray, sphere: np.ndarray) -> randomized.RandomizedFit:
    return randomized.fit(x, sphere, PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG)


def test_pca_lowrank_is_far_from_exact_pca_here_and_passes(flat):
    centred = flat - flat.mean(axis=0)
    torch.manual_seed(1234)  # not one of the seeds the bound uses
    _, _, v = torch.pca_lowrank(torch.from_numpy(flat.astype(np.float32)), q=3)
    student = sphere_of((centred @ v.numpy().astype(np.float64)).T)
    exact = pca3(flat).sphere
    angles = token_angles(exact, align_signs(exact, student)[0])
    assert np.median(angles) > PROJECTION_MEDIAN_DEG  # the token-angle test alone would fail it
    found = judge(flat, student)
    assert found.passed, found
    assert "torch.pca_lowrank(q=3) captures" in found.words()


def test_exact_pca_passes(flat):
    found = judge(flat, pca3(flat).sphere.astype(np.float64))
    assert found.passed and found.captured > 0.999, found


def test_components_4_to_6_fail(flat):
    centred = flat - flat.mean(axis=0)
    vt = np.linalg.svd(centred, full_matrices=False)[2]
    found = judge(flat, sphere_of(vt[10:13] @ centred.T))
    assert not found.passed, found


def test_uncentred_projection_fails(flat):
    vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)[2]
    found = judge(flat, sphere_of(vt[:3] @ flat.T))  # the mean is projected too: not a linear map of the data
    assert not found.passed and found.lowrank_range is None, found


def test_u_without_s_fails_where_the_scales_differ():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 40)) * np.linspace(6.0, 1.0, 40)  # S1 / S3 about 1.2
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    found = judge(x, sphere_of(u[:, :3].T))  # U alone: each component scaled by 1 / S_k
    assert not found.passed and found.isotropy < randomized.ISOTROPY_MIN, found
