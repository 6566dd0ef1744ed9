"""Judge extracted captures and projections against the golden, in the grader process.

Captures: each captured layer is compared with all seven sites of its layer (and of the layers
next to it), and named after the closest one within a dtype-aware tolerance, so feedback can say
"your layer 7 capture equals the MLP output of layer 7 (mlp_out)".

Projections: each of the three components is aligned by sign, then each token's angle on the
sphere is measured; layers pass on robust statistics (median and 95th percentile), never on the
maximum, because normalising amplifies noise for tokens near the centre. The reference is the
exact PCA of the student's OWN captures when they exist (error carried forward: a wrong hook site
costs Part 3 only), else the golden projections.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from grader.judge.golden import Golden, GoldenStore
from grader.execute.records import ExecutionRecord
from grader.spec.geometry import align_signs, pca3, to_sphere, token_angles
from grader.spec.sites import SITE_NAMES, TARGET_SITE

# Median per-token relative error under which a capture "equals" a golden activation.
SITE_TOLERANCE = {"float32": 2e-3, "float64": 2e-3}
SITE_TOLERANCE_LOW_PRECISION = 0.03  # bfloat16 / float16, compared with a golden of the same dtype
PROJECTION_MEDIAN_DEG = 1.0  # per layer: median token angle to the reference
PROJECTION_P95_DEG = 5.0  # per layer: 95th percentile token angle
DEGENERATE_RATIO = 1.1  # S_k / S_k+1 below this: components k, k+1 are not well defined
UNIT_NORM_TOL = {"float32": 1e-3, "float64": 1e-3}
UNIT_NORM_TOL_LOW_PRECISION = 1e-2


def site_tolerance(dtype: str | None) -> float:
    return SITE_TOLERANCE.get(dtype or "float32", SITE_TOLERANCE_LOW_PRECISION)


def as_tokens(arr: np.ndarray) -> np.ndarray:
    """[1, N, d] / [N, d] / [B, N, d] -> [N, d] (first batch row)."""
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim > 2:
        arr = arr[0]
    return arr


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Median over tokens of ||a_t - b_t|| / ||b_t||."""
    num = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=-1)
    den = np.maximum(np.linalg.norm(b.astype(np.float64), axis=-1), 1e-12)
    return float(np.median(num / den))


@dataclass
class LayerSite:
    key: int  # the student's dict key (or list index)
    layer: int  # the layer the key stands for
    shape: list[int]
    site: str  # a site name, "unknown", "generate_step" or "shape_mismatch"
    matched_layer: int | None = None
    error: float | None = None  # median relative error to the matched activation
    target_error: float | None = None  # ... to resid_pre of `layer`
    nearest: str | None = None  # "site.layer" of the closest golden activation, matched or not

    @property
    def correct(self) -> bool:
        return self.site == TARGET_SITE and self.matched_layer == self.layer


@dataclass
class CaptureVerdict:
    variable: str
    layout: str
    dtype: str | None
    key_base: int  # 0 when keys are 0..L-1, 1 when 1..L
    layers: list[LayerSite]
    reference: str  # "prompt" (the assignment's tokens), "student_prompt" or "none"
    n_tokens: int | None
    candidates: int = 1
    note: str | None = None

    @property
    def n_correct(self) -> int:
        return sum(ls.correct for ls in self.layers)

    @property
    def dominant(self) -> tuple[str, int] | None:
        """Most common (site, layer offset) across layers."""
        c = Counter((ls.site, (ls.matched_layer - ls.layer) if ls.matched_layer is not None else 0) for ls in self.layers)
        return c.most_common(1)[0][0] if c else None


@dataclass
class LayerProjection:
    key: int
    layer: int
    median_deg: float | None
    p95_deg: float | None
    passed: bool
    rotated: bool = False  # matches only after a 3x3 rotation of the components
    degenerate: bool = False  # the reference's top-3 singular values are nearly equal here
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


@dataclass
class PromptVerdict:
    ran_golden: bool
    n_forwards: int
    token_counts: list[int]
    from_generate: bool
    first_difference: str | None = None


@dataclass
class Comparison:
    captures: CaptureVerdict | None
    projections: ProjectionVerdict | None
    prompt: PromptVerdict
    golden_ids_sha256: str

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------


def _arrays(extracted: dict[str, np.ndarray], kind: str, variable: str) -> dict[int, np.ndarray]:
    prefix = f"{kind}.{variable}."
    return {int(k[len(prefix):]): v for k, v in extracted.items() if k.startswith(prefix)}


def _student_ids(rec: ExecutionRecord, n_tokens: int) -> list[int] | None:
    """Token ids of the student's own forward with n_tokens tokens, if the probe kept them."""
    for fwd in rec.forwards:
        if fwd.get("n_tokens") == n_tokens and fwd.get("input_ids"):
            return list(fwd["input_ids"])
    return None


def identify_site(x: np.ndarray, layer: int, golden: Golden, tol: float) -> LayerSite:
    """Name the activation x [N, d] by the closest golden site at this layer (then the layers beside it)."""
    base = LayerSite(key=layer, layer=layer, shape=list(x.shape), site="unknown")
    if x.ndim != 2 or x.shape[-1] != golden.hidden_size:
        base.site = "shape_mismatch"
        return base
    if x.shape[0] == 1 and golden.n_tokens != 1:
        base.site = "generate_step"
        return base
    if x.shape[0] != golden.n_tokens:
        base.site = "shape_mismatch"
        return base
    errors: dict[tuple[str, int], float] = {}
    for offset in (0, -1, 1):
        n = layer + offset
        if not 0 <= n < golden.num_layers:
            continue
        for site in SITE_NAMES:
            errors[(site, n)] = rel_err(x, golden.site(site, n))
        if offset == 0:
            base.target_error = errors[(TARGET_SITE, n)]
            best = min(((s, n) for s in SITE_NAMES), key=errors.get)
            if errors[best] <= tol:
                break
    ranked = sorted(errors, key=errors.get)
    best = ranked[0]
    same_layer = min(((s, layer) for s in SITE_NAMES if (s, layer) in errors), key=errors.get, default=best)
    if errors.get(same_layer, np.inf) <= tol:  # prefer an explanation at the same layer
        best = same_layer
    base.error = errors[best]
    base.nearest = f"{best[0]}.{best[1]}"
    if errors[best] <= tol:
        base.site, base.matched_layer = best
    return base


def compare_captures(rec: ExecutionRecord, extracted: dict, store: GoldenStore, golden: Golden) -> CaptureVerdict | None:
    """Judge every captures candidate; keep the one with the most layers equal to resid_pre."""
    verdicts = []
    for cand in rec.captures_candidates or []:
        if not cand.get("saved", True):
            continue
        arrays = _arrays(extracted, "captures", cand["variable"])
        if not arrays:
            continue
        verdicts.append(_judge_captures(cand, arrays, rec, store, golden))
    if not verdicts:
        return None
    best = max(verdicts, key=lambda v: (v.n_correct, sum(ls.site != "unknown" for ls in v.layers), len(v.layers)))
    best.candidates = len(verdicts)
    return best


def _judge_captures(cand: dict, arrays: dict[int, np.ndarray], rec: ExecutionRecord, store: GoldenStore,
                    golden: Golden) -> CaptureVerdict:
    dtype = (rec.model or {}).get("dtype") or cand.get("dtype")
    keys = sorted(arrays)
    key_base = 1 if keys and keys[0] == 1 and keys[-1] == golden.num_layers else 0
    tokens = {k: as_tokens(v) for k, v in arrays.items()}
    n_tokens = Counter(t.shape[0] for t in tokens.values()).most_common(1)[0][0]
    reference, note = "prompt", None
    ref = golden if dtype in (None, "float32", "float64") else store.get(golden.token_ids, dtype)
    if n_tokens != golden.n_tokens and n_tokens > 1:
        ids = _student_ids(rec, n_tokens)
        if ids is not None:
            ref = store.get(ids, dtype if dtype in ("bfloat16", "float16") else "float32")
            reference = "student_prompt"
            note = f"compared with the reference run on your own {n_tokens}-token prompt"
        else:
            reference = "none"
            note = f"your captures hold {n_tokens} tokens and your token ids were not recorded, so they cannot be compared"
    tol = site_tolerance(dtype)
    layers = []
    for k in keys:
        layer = k - key_base
        if not 0 <= layer < golden.num_layers:
            layers.append(LayerSite(key=k, layer=layer, shape=list(tokens[k].shape), site="unknown"))
            continue
        ls = identify_site(tokens[k], layer, ref, tol)
        ls.key = k
        layers.append(ls)
    return CaptureVerdict(variable=cand["variable"], layout=cand.get("layout", "dict"), dtype=dtype,
                          key_base=key_base, layers=layers, reference=reference, n_tokens=n_tokens, note=note)


def _as_3xn(arr: np.ndarray) -> tuple[np.ndarray | None, str]:
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
        arrays = _arrays(extracted, "projections", cand["variable"])
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
    converted = {k: _as_3xn(v) for k, v in arrays.items()}
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
        ref, sv = None, None
        if use_own and (layer + captures.key_base) in cap_arrays:
            x = as_tokens(cap_arrays[layer + captures.key_base])
            if x.ndim == 2 and x.shape[0] == student.shape[1] and x.shape[0] > 3:
                fit = pca3(x)
                ref, sv = fit.sphere, fit.singular_values
        if ref is None:
            if student.shape[1] != golden.n_tokens:
                lp.note = f"{student.shape[1]} tokens; the reference has {golden.n_tokens}"
                continue
            ref = golden.projections[layer]
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
    return verdict


def compare_prompt(rec: ExecutionRecord, golden: Golden) -> PromptVerdict:
    forwards = rec.forwards or []
    ran = any(f.get("input_ids_sha256") == golden.ids_sha256 for f in forwards)
    counts = sorted({f.get("n_tokens") for f in forwards if f.get("n_tokens") is not None})
    verdict = PromptVerdict(ran_golden=ran, n_forwards=rec.n_forwards, token_counts=counts,
                            from_generate=any(f.get("from_generate") for f in forwards))
    if not ran:
        for f in forwards:
            ids = f.get("input_ids")
            if ids:
                diff = next((i for i, (a, b) in enumerate(zip(ids, golden.token_ids)) if a != b),
                            min(len(ids), len(golden.token_ids)))
                verdict.first_difference = (f"{len(ids)} tokens were run; they first differ from the assignment's "
                                            f"{golden.n_tokens} at position {diff}")
                break
    return verdict


def compare(rec: ExecutionRecord, extracted: dict[str, np.ndarray], store: GoldenStore) -> Comparison:
    golden = store.get()
    captures = compare_captures(rec, extracted, store, golden)
    cap_arrays = _arrays(extracted, "captures", captures.variable) if captures else None
    projections = compare_projections(rec, extracted, captures, cap_arrays, golden)
    return Comparison(captures=captures, projections=projections, prompt=compare_prompt(rec, golden),
                      golden_ids_sha256=golden.ids_sha256)

