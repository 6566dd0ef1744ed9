"""Captures: name what each captured layer holds, by comparing it with every golden site.

Each captured layer is compared with all seven sites of its layer (and of the layers next to it) and
named after the closest one within a dtype-aware tolerance, so feedback can say "your layer 7
capture equals the MLP output of layer 7 (mlp_out)". Students who ran another prompt are compared
with the reference run on their own tokens; students in bfloat16/float16 with a golden in their dtype.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from grader.execute.records import ExecutionRecord
from grader.judge.golden import Golden, GoldenStore
from grader.spec.sites import SITE_NAMES, TARGET_SITE

# Median per-token relative error under which a capture "equals" a golden activation.
SITE_TOLERANCE = {"float32": 2e-3, "float64": 2e-3}
SITE_TOLERANCE_LOW_PRECISION = 0.03  # bfloat16 / float16, compared with a golden of the same dtype


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



def arrays_of(extracted: dict[str, np.ndarray], kind: str, variable: str) -> dict[int, np.ndarray]:
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
        arrays = arrays_of(extracted, "captures", cand["variable"])
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
    ids = _student_ids(rec, n_tokens)
    try:
        ref = golden if dtype in (None, "float32", "float64") else store.get(golden.token_ids, dtype)
        if n_tokens > 1 and (n_tokens != golden.n_tokens or (ids is not None and ids != golden.token_ids)):
            # the student ran other tokens (even one changed word): judge against the reference run on them
            if ids is None:
                raise LookupError(f"your captures hold {n_tokens} tokens and your token ids were not recorded, "
                                  "so they cannot be compared")
            ref = store.get(ids, dtype if dtype in ("bfloat16", "float16") else "float32")
            reference = "student_prompt"
            note = f"compared with the reference run on your own {n_tokens}-token prompt"
    except LookupError as exc:  # no ids recorded, or GoldenUnavailable (the student kit has no reference to run)
        ref, reference, note = golden, "none", str(exc)
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


