"""One vocabulary for the places inside a decoder layer where activations can be read.

Each site is named after what it holds, in the spirit of TransformerLens' hook points. The grader, the
reference pipeline, JSON files and reports all use these names. Where a site lives in a model (the module
path relative to the decoder layer and the hook that reads it) is the model family's business
(grader/families/<family>.py `sites`): in Qwen3 and Llama,

    resid_pre  -> input_layernorm -> ln1_out -> self_attn -> attn_out -> (+) -> resid_mid
    resid_mid  -> post_attention_layernorm -> ln2_out -> mlp -> mlp_out -> (+) -> resid_post
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    description: str  # how a student would say it; {module} is the family's module for the site


SITES: dict[str, Site] = {
    s.name: s
    for s in (
        Site("resid_pre", "the residual stream entering layer {n}"),
        Site("ln1_out", "the output of {module} in layer {n}"),
        Site("attn_out", "the attention output of layer {n}"),
        Site("resid_mid", "the residual stream after attention in layer {n}"),
        Site("ln2_out", "the output of {module} in layer {n}"),
        Site("mlp_out", "the MLP output of layer {n}"),
        Site("resid_post", "the residual stream leaving layer {n}"),
    )
}
SITE_NAMES: tuple[str, ...] = tuple(SITES)
TARGET_SITE = "resid_pre"  # what the assignment asks for by default: the input of each decoder layer


def describe(site: str, layer: int, family) -> str:
    """'the MLP output of layer 7 (mlp_out)'; 'unknown' gets a plain phrase. `family` (grader/families) names
    the norms' modules."""
    if site not in SITES:
        return f"none of the seven activations of layer {layer} ({site})"
    return f"{SITES[site].description.format(n=layer, module=family.sites[site].module)} ({site})"
