"""Projections: compare the student's sphere points with the reference, layer by layer.

Each of the three components is aligned by sign, then each token's angle on the sphere is measured;
layers pass on robust statistics (median and 95th percentile), never on the maximum, because
normalising amplifies noise for tokens near the centre. The reference is the exact PCA of the
student's OWN captures when they exist (error carried forward: a wrong hook site costs Part 3 only),
else the golden projections. A layer that fails against exact PCA still passes when its components are
a rotation inside a near-degenerate subspace, or what randomized PCA (`torch.pca_lowrank`, the seed's
own call) gives where the spectrum is too flat for it to converge (grader/judge/randomized.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from grader.judge import randomized
from grader.judge.captures import CaptureVerdict, arrays_of, as_tokens
from grader.judge.golden import Golden
from grader.execute.records import ExecutionRecord
from grader.spec.geometry import align_signs, pca3, to_sphere, token_angles
from grader.spec.sites import TARGET_SITE

PROJECTION_MEDIAN_DEG = 1.0  # per layer: median token angle to the reference
PROJECTION_P95_DEG = 5.0  # per layer: 95th percentile token angle
DEGENERATE_RATIO = 1.1  # S_k / S_k+1 below this: components k, k+1 are not well defined
UNIT_NORM_TOL = {"float32": 1e-3, "float64": 1e-3}
UNIT_NORM_TOL_LOW_PRECISION = 1e-2


@dataclass
class LayerProjection:
    key: int
    layer: int
    median_deg: float | None
    p95_deg: float | None
    passed: bool
    rotated: bool = False  # matches only after a 3x3 rotation of the components
    degenerate: bool = False  # the reference's top-3 singular values are nearly equal here
    randomized: bool = False  # passes as what torch.pca_lowrank gives here (grader/judge/randomized.py)
    note: str | None = None


@dataclass
class ProjectionVerdict:
    variable: str
    layout: str  # "3xN", "Nx3" or "other"
    shapes: list[list[int]]
    n_layers: int
    shape_ok: bool
    unit_norm_max_dev: float | None
    unit_norm_tol: float
    reference: str  # "own_captures", "golden" or "none"
    layers: list[LayerProjection] = field(default_factory=list)

    @property
    def all_passed(self) -> bool:
        return bool(self.layers) and all(lp.passed for lp in self.layers)

    @property
    def worst(self) -> list[LayerProjection]:
        judged = [lp for lp in self.layers if lp.p95_deg is not None]
        return sorted(judged, key=lambda lp: -lp.p95_deg)[:3]



def as_3xn(arr: np.ndarray) -> tuple[np.ndarray | None, str]:
    a = arr
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        return None, "other"
    if a.shape[0] == 3:
        return a, "3xN"
    if a.shape[1] == 3:
        return a.T, "Nx3"
    return None, "other"


def _procrustes_deg(ref: np.ndarray, student: np.ndarray) -> np.ndarray:
    """Token angles after the best orthogonal 3x3 map of the student's components onto the reference."""
    u, _, vt = np.linalg.svd(ref.astype(np.float64) @ student.astype(np.float64).T)
    rotation = u @ vt  # [3, 3]
    return token_angles(ref, rotation @ student)


def compare_projections(rec: ExecutionRecord, extracted: dict, captures: CaptureVerdict | None,
                        cap_arrays: dict[int, np.ndarray] | None, golden: Golden) -> ProjectionVerdict | None:
    verdicts = []
    for cand in rec.projections_candidates or []:
        arrays = arrays_of(extracted, "projections", cand["variable"])
        if arrays and cand.get("saved", True):
            verdicts.append(_judge_projections(cand, arrays, captures, cap_arrays, golden))
    if not verdicts:
        return None
    return max(verdicts, key=lambda v: (sum(lp.passed for lp in v.layers), v.shape_ok, len(v.layers)))


def _judge_projections(cand: dict, arrays: dict[int, np.ndarray], captures: CaptureVerdict | None,
                       cap_arrays: dict[int, np.ndarray] | None, golden: Golden) -> ProjectionVerdict:
    keys = sorted(arrays)
    key_base = 1 if keys and keys[0] == 1 and keys[-1] == golden.num_layers else 0
    dtype = cand.get("dtype") or "float32"
    tol = UNIT_NORM_TOL.get(dtype, UNIT_NORM_TOL_LOW_PRECISION)
    converted = {k: as_3xn(v) for k, v in arrays.items()}
    layouts = Counter(layout for _, layout in converted.values())
    layout = layouts.most_common(1)[0][0]
    # N is the number of tokens the student ran: a prompt mistake costs Part 4, not this check too
    n_expected = captures.n_tokens if captures is not None and captures.reference == "student_prompt" \
        else golden.n_tokens
    shape_ok = (layout == "3xN" and len(keys) == golden.num_layers
                and all(v is not None and v.shape[1] == n_expected and arrays[k].ndim == 2
                        for k, (v, _) in converted.items()))
    devs = [float(np.max(np.abs(np.linalg.norm(v.astype(np.float64), axis=0) - 1.0)))
            for v, _ in converted.values() if v is not None]
    use_own = captures is not None and cap_arrays is not None and captures.reference != "none"
    verdict = ProjectionVerdict(variable=cand["variable"], layout=layout,
                                shapes=[list(arrays[k].shape) for k in keys[:3]], n_layers=len(keys),
                                shape_ok=shape_ok, unit_norm_max_dev=max(devs) if devs else None,
                                unit_norm_tol=tol, reference="own_captures" if use_own else "golden")
    for k in keys:
        layer = k - key_base
        student, _ = converted[k]
        lp = LayerProjection(key=k, layer=layer, median_deg=None, p95_deg=None, passed=False)
        verdict.layers.append(lp)
        if student is None or not 0 <= layer < golden.num_layers:
            lp.note = f"shape {list(arrays[k].shape)} is not 3 x N"
            continue
        ref, sv, x = None, None, None
        if use_own and (layer + captures.key_base) in cap_arrays:
            x = as_tokens(cap_arrays[layer + captures.key_base])
            if x.ndim == 2 and x.shape[0] == student.shape[1] and x.shape[0] > 3:
                fit = pca3(x)
                ref, sv = fit.sphere, fit.singular_values
            else:
                x = None
        if ref is None:
            if student.shape[1] != golden.n_tokens:
                lp.note = f"{student.shape[1]} tokens; the reference has {golden.n_tokens}"
                continue
            ref = golden.projections[layer]
            x = _golden_input(golden, layer)
            sv = np.asarray(golden.metrics[layer]["singular_values_top5"]) if golden.metrics else None
        aligned, _ = align_signs(ref, to_sphere(student))
        angles = token_angles(ref, aligned)
        lp.median_deg, lp.p95_deg = float(np.median(angles)), float(np.percentile(angles, 95))
        lp.passed = lp.median_deg <= PROJECTION_MEDIAN_DEG and lp.p95_deg <= PROJECTION_P95_DEG
        if not lp.passed:
            rotated = _procrustes_deg(ref, to_sphere(student))
            if np.median(rotated) <= PROJECTION_MEDIAN_DEG and np.percentile(rotated, 95) <= PROJECTION_P95_DEG:
                lp.rotated = True
                ratios = sv[:3] / np.maximum(sv[1:4], 1e-12) if sv is not None and len(sv) >= 4 else None
                lp.degenerate = bool(ratios is not None and np.min(ratios) < DEGENERATE_RATIO)
                if lp.degenerate:
                    lp.passed = True
                    lp.note = (f"your components are a rotation of the reference's inside a near-degenerate subspace "
                               f"(singular value ratios {', '.join(f'{r:.2f}' for r in ratios)}), which PCA does not pin down")
                else:
                    lp.note = "your three components span the right subspace but are mixed or in a different order"
            elif x is not None:
                _judge_as_randomized(lp, x, to_sphere(student))
    return verdict


def _golden_input(golden: Golden, layer: int) -> np.ndarray | None:
    """The reference's captures at the layer the projections were made from, [N, d] (None when not kept)."""
    try:
        return as_tokens(np.asarray(golden.site(TARGET_SITE, layer)))
    except (KeyError, AttributeError, TypeError):
        return None


def _judge_as_randomized(lp: LayerProjection, x: np.ndarray, sphere: np.ndarray) -> None:
    """A layer that failed against exact PCA passes when it is what torch.pca_lowrank(q=3) gives on x."""
    found = randomized.fit(x, sphere, PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG)
    if found.passed:
        lp.passed = lp.randomized = True
        lp.note = (f"randomized PCA that has not converged to the exact components, as torch.pca_lowrank does "
                   f"where the top singular values are close: {found.words()}")




@dataclass
class SpherePanel:
    """One layer for display: the student's points (sign-aligned to the reference) and the reference's, [3, N]."""

    layer: int
    student: np.ndarray | None
    reference: np.ndarray | None
    median_deg: float | None = None  # the verdict's median token angle at this layer


def sphere_layers(n: int) -> list[int]:
    """The layers the reports draw: first, middle, last."""
    return sorted({0, n // 2, n - 1})


def sphere_panels(verdict: ProjectionVerdict, extracted: dict, golden: Golden,
                  wrong_site: bool) -> tuple[list[SpherePanel], str]:
    """The student's sphere points (sign-aligned to the golden) and the golden's at three layers, and
    what a TA should know when reading them."""
    by_layer = {lp.layer: lp for lp in verdict.layers}
    panels, mismatched = [], False
    for layer in sphere_layers(golden.num_layers):
        ref = np.asarray(golden.projections[layer], np.float64)
        lp = by_layer.get(layer)
        student = None
        arr = extracted.get(f"projections.{verdict.variable}.{lp.key}") if lp is not None else None
        if arr is not None:
            pts, _ = as_3xn(np.asarray(arr))
            if pts is not None and np.isfinite(pts).all():
                student = to_sphere(pts).astype(np.float64)
                if student.shape == ref.shape:
                    student, _ = align_signs(ref, student)
                else:
                    mismatched = True
        panels.append(SpherePanel(layer=layer, student=student, reference=ref,
                                  median_deg=lp.median_deg if lp is not None else None))
    note = ("Colours follow token position (dark = first token) in both rows, so a matching sphere has matching "
            "colours in the same places. Student points are normalised for display and each component's sign is "
            "flipped to agree with the reference.")
    if verdict.reference == "own_captures" and wrong_site:
        note += (" The reference row is the assignment's answer (resid_pre); the angle chart above compares with the "
                 "PCA of the student's own captures instead, so a wrong hook site does not cost Part 5 twice.")
    if mismatched:
        note += " The student's token count differs from the reference's, so the signs could not be aligned."
    return panels, note
