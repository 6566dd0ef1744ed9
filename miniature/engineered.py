"""The engineered weights every miniature is drawn with, for any family (grader/families/).

Why engineered and not random: a random model has a flat spectrum, so the top-3 PCA of the residual
stream is ill defined and `torch.pca_lowrank` disagrees with exact PCA by up to 180 degrees. Here the
token embeddings put three dominant directions P (scales `dominant_scales`) on top of small isotropic
noise, and every layer's output projections (a family's "out" parameters: o_proj and down_proj, or
GPT-2's c_proj) write only into the span of P. The residual stream therefore stays (noise) + (3-D
signal) at every layer, with well-separated top-3 singular values, while attention and the MLP move
tokens non-uniformly inside the 3-D span, so the sphere animation shows motion.

Weights come from numpy's PCG64 in a fixed order: first an orthonormal basis of the hidden space, then
the family's parameters in declaration order (embeddings, each layer's, the final ones), so every
machine gets the same bytes. A parameter with init "head" (an LM head that a config may tie to the
token embeddings) is drawn like "in" when the config's tie_word_embeddings is false and is absent,
drawing nothing, when it is true. `tests/test_tiny.py` measures the spectrum of each shipped miniature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grader.families.base import Family, Param


@dataclass(frozen=True)
class Engineering:
    seed: int = 2  # PCG64 seed
    dominant_scales: tuple[float, float, float] = (5.0, 3.0, 1.8)  # embedding std along P
    noise_scale: float = 0.12  # embedding std along each of the other hidden - 3 directions
    update_scale: float = 0.85  # gain of the output projections into span(P)
    position_scale: float = 0.02  # std of learned position embeddings (families that have them)


def draw_weights(family: Family, config: dict, eng: Engineering) -> dict[str, np.ndarray]:
    """All parameters of a miniature of `family` with this config, as float32 arrays."""
    env = family.shape_env(config)
    d = env["hidden_size"]
    n_layers = env[family.num_layers_key]
    rng = np.random.Generator(np.random.PCG64(eng.seed))
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))  # [d, d] orthonormal
    dom, rest = basis[:, :3], basis[:, 3:]  # [d, 3] dominant directions P, [d, d-3] the rest
    scales = np.asarray(eng.dominant_scales)
    into_span = eng.update_scale * dom * (scales / scales[0])  # [d, 3] writes into span(P), anisotropic

    def shape(p: Param) -> tuple[int, ...]:
        return tuple(dim if isinstance(dim, int) else env[dim] for dim in p.shape)

    def draw(p: Param) -> np.ndarray:
        s = shape(p)
        out_shape = s[::-1] if p.transposed else s  # Conv1D stores [in, out]: drawn as [out, in], then transposed
        if p.init == "ones":
            a = np.ones(s)
        elif p.init == "zeros":
            a = np.zeros(s)
        elif p.init in ("in", "head"):
            a = rng.standard_normal(out_shape) / np.sqrt(out_shape[-1])  # [out, in]
        elif p.init == "out":
            fan_in = out_shape[-1]
            a = into_span @ (rng.standard_normal((3, fan_in)) / np.sqrt(fan_in))  # [d, in]
        elif p.init == "embed":
            vocab = s[0]
            signal = rng.standard_normal((vocab, 3)).astype(np.float32)  # [V, 3]
            noise = rng.standard_normal((vocab, d - 3)).astype(np.float32)  # [V, d-3]
            a = (signal * scales) @ dom.T + eng.noise_scale * (noise @ rest.T)  # [V, d]
        elif p.init == "position":
            a = eng.position_scale * rng.standard_normal(s)  # [positions, d]
        else:
            raise ValueError(f"{family.name}: parameter {p.name} has an unknown init {p.init!r}")
        return a.T if p.transposed and p.init in ("in", "out") else a

    def drawn(p: Param) -> bool:
        if p.init != "head":
            return True
        if "tie_word_embeddings" not in config:  # transformers' default differs per family: say it
            raise ValueError(f"{family.name}: parameter {p.name} exists only when the embeddings are untied; "
                             "expected tie_word_embeddings (true or false) in the config, found none")
        return not config["tie_word_embeddings"]

    weights: dict[str, np.ndarray] = {}
    for p in filter(drawn, family.embeddings):
        weights[p.name] = draw(p)
    for layer in range(n_layers):
        for p in filter(drawn, family.layer):
            weights[p.name.format(layer=layer)] = draw(p)
    for p in filter(drawn, family.final):
        weights[p.name] = draw(p)
    return {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in weights.items()}
