"""Capture every site of every decoder layer with forward hooks, and cross-check the captures.

One forward pass of the prompt with hooks at all seven sites (grader/spec/sites.py; where each is read
in a layer is the family's, grader/families/) of all layers. The captures are checked against each
other (the family's wiring: resid_mid = resid_pre + attn_out, ...) and against `output_hidden_states`
before anything is written, so a transformers release that changes the layer's wiring fails loudly
here instead of producing a wrong golden.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

from grader.errors import StageError
from grader.families.base import FORWARD_PRE, Family
from grader.spec.sites import SITE_NAMES
from reference.model import decoder_layers


class CaptureConsistencyError(StageError, AssertionError):
    pass


@dataclass
class Captures:
    arrays: dict[str, np.ndarray]  # "{site}.{layer}" -> [N, d] float32
    input_ids: list[int]
    num_layers: int
    hidden_size: int

    def get(self, site: str, layer: int) -> np.ndarray:
        return self.arrays[f"{site}.{layer}"]


def _first_tensor(value):
    """Hooks see a Tensor or a tuple whose first item is the Tensor (attention returns (out, weights))."""
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dim() == 3:  # [1, N, d]: the batch of one prompt
        t = t[0]
    # One new float32 CPU tensor in one pass (copy=True: never a view of the model's tensor).
    return t.to(device="cpu", dtype=torch.float32, copy=True).numpy()  # [N, d]


def _install(layer: torch.nn.Module, index: int, store: dict[str, np.ndarray], family: Family) -> list:
    handles = []
    for name in SITE_NAMES:
        place = family.sites[name]
        module = layer.get_submodule(place.module) if place.module else layer
        key = f"{name}.{index}"
        if place.hook == FORWARD_PRE:

            def pre_hook(mod, args, kwargs, key=key):
                hidden = args[0] if args else kwargs["hidden_states"]
                store[key] = _to_numpy(_first_tensor(hidden))

            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        else:

            def hook(mod, args, output, key=key):
                store[key] = _to_numpy(_first_tensor(output))

            handles.append(module.register_forward_hook(hook))
    return handles


def _check(ok: bool, what: str, worst: float, family: Family) -> None:
    if not ok:
        raise CaptureConsistencyError(
            f"captured activations are inconsistent: {what} (max abs difference {worst:.3g}); "
            f"the decoder layer's wiring differs from {family.decoder_layer}'s, so no golden is written"
        )


def cross_check(caps: Captures, hidden_states: list[np.ndarray | torch.Tensor], atol: float, family: Family) -> None:
    """resid_pre == hidden_states[N], and the family's wiring (resid_mid == resid_pre + attn_out, resid_post ==
    resid_mid + mlp_out for pre-norm blocks); resid_post of N == resid_pre of N + 1.

    hidden_states may be the model's own tensors: each is converted to float32 only for its layer.
    """
    for n in range(caps.num_layers):
        pre, post = caps.get("resid_pre", n), caps.get("resid_post", n)
        hidden = hidden_states[n]
        hidden = _to_numpy(hidden) if isinstance(hidden, torch.Tensor) else hidden  # [N, d]
        diff = np.abs(pre - hidden).max()
        _check(diff <= atol, f"resid_pre.{n} != output_hidden_states[{n}]", diff, family)
        for total, a, b in family.wiring:
            t = caps.get(total, n)
            diff = np.abs(t - (caps.get(a, n) + caps.get(b, n))).max()
            _check(diff <= atol * (1 + np.abs(t).max()), f"{total}.{n} != {a}.{n} + {b}.{n}", diff, family)
        if n + 1 < caps.num_layers:
            diff = np.abs(post - caps.get("resid_pre", n + 1)).max()
            _check(diff <= atol, f"resid_post.{n} != resid_pre.{n + 1}", diff, family)


@torch.no_grad()
def capture_all_sites(model: torch.nn.Module, input_ids: torch.Tensor, family: Family | None = None) -> Captures:
    """Run input_ids [1, N] once with hooks at every site; return cross-checked float32 captures. The
    family (where the sites are) defaults to the one of the model's config."""
    if family is None:
        from grader.families import for_config

        family = for_config(model.config.to_dict())
    layers = decoder_layers(model, family)
    store: dict[str, np.ndarray] = {}
    handles = [h for i, layer in enumerate(layers) for h in _install(layer, i, store, family)]
    try:
        # logits_to_keep=1: the captures need no logits; all 404 would be [1, 404, 151936] and
        # the lm_head matmul, ~10% of Qwen3-4B's forward.
        kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        out = model(input_ids=input_ids, output_hidden_states=True, use_cache=False, **kwargs)
    finally:
        for h in handles:
            h.remove()
    hidden = out.hidden_states[: len(layers)]  # the model's tensors; cross_check converts one at a time
    del out  # the logits
    expected = {f"{s}.{n}" for s in SITE_NAMES for n in range(len(layers))}
    if set(store) != expected:
        missing = sorted(expected - set(store))[:5]
        raise CaptureConsistencyError(f"hooks did not fire for {len(expected - set(store))} site(s), e.g. {missing}")
    caps = Captures(
        arrays={k: store[k] for k in sorted(expected, key=_site_order)},
        input_ids=input_ids[0].tolist(),
        num_layers=len(layers),
        hidden_size=hidden[0].shape[-1],
    )
    dtype = next(model.parameters()).dtype
    cross_check(caps, hidden, atol=1e-5 if dtype == torch.float32 else 1e-2, family=family)
    return caps


def _site_order(key: str) -> tuple[int, int]:
    site, layer = key.rsplit(".", 1)
    return int(layer), SITE_NAMES.index(site)
