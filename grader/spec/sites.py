"""One vocabulary for the places inside a decoder layer where activations can be read.

Each site is named after what it holds and defined by the module path (relative to the decoder
layer `model.layers.N`) and the hook that reads it, in the spirit of TransformerLens' hook points.
The grader, the reference pipeline, JSON files and reports all use these names.

    resid_pre  -> input_layernorm -> ln1_out -> self_attn -> attn_out -> (+) -> resid_mid
    resid_mid  -> post_attention_layernorm -> ln2_out -> mlp -> mlp_out -> (+) -> resid_post
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    module: str  # path relative to the decoder layer; "" is the layer itself
    hook: str  # "forward_pre" reads the module's first input, "forward" its output
    description: str  # how a student would say it


SITES: dict[str, Site] = {
    s.name: s
    for s in (
        Site("resid_pre", "", "forward_pre", "the residual stream entering layer {n}"),
        Site("ln1_out", "input_layernorm", "forward", "the output of input_layernorm in layer {n}"),
        Site("attn_out", "self_attn", "forward", "the attention output of layer {n}"),
        Site("resid_mid", "post_attention_layernorm", "forward_pre", "the residual stream after attention in layer {n}"),
        Site("ln2_out", "post_attention_layernorm", "forward", "the output of post_attention_layernorm in layer {n}"),
        Site("mlp_out", "mlp", "forward", "the MLP output of layer {n}"),
        Site("resid_post", "", "forward", "the residual stream leaving layer {n}"),
    )
}
SITE_NAMES: tuple[str, ...] = tuple(SITES)
TARGET_SITE = "resid_pre"  # what the assignment asks for: the input of each decoder layer

# The decoder-layer submodules the reference pipeline needs; a model without them is not Qwen3-like.
REQUIRED_SUBMODULES = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")

# Reading a module's *input* with a forward hook (args[0]) gives the same tensor as a pre-hook.
INPUT_OF = {
    "": "resid_pre",
    "input_layernorm": "resid_pre",
    "self_attn": "ln1_out",
    "post_attention_layernorm": "resid_mid",
    "mlp": "ln2_out",
}


def describe(site: str, layer: int) -> str:
    """'the MLP output of layer 7 (mlp_out)'; 'unknown' gets a plain phrase."""
    if site in SITES:
        return f"{SITES[site].description.format(n=layer)} ({site})"
    return f"none of the seven activations of layer {layer} ({site})"


def layer_path(layer: int) -> str:
    """Module path of decoder layer N in a *ForCausalLM, as named_modules() spells it."""
    return f"model.layers.{layer}"


def parse_module_path(path: str) -> tuple[int, str] | None:
    """'model.layers.7.mlp' -> (7, 'mlp'); 'model.layers.7' -> (7, ''); anything else -> None.

    Accepts the bare Qwen3Model spelling ('layers.7.mlp') too.
    """
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "layers" and parts[i + 1].isdigit():
            return int(parts[i + 1]), ".".join(parts[i + 2 :])
    return None


def sites_readable_by(relative_module: str, hook_kind: str) -> tuple[str, ...]:
    """Which sites a hook of this kind on this module can read.

    A forward hook sees both the input and the output of its module; a pre-hook only the input.
    """
    readable = []
    if relative_module in INPUT_OF:
        readable.append(INPUT_OF[relative_module])
    if hook_kind.startswith("forward") and not hook_kind.startswith("forward_pre"):
        readable += [s.name for s in SITES.values() if s.module == relative_module and s.hook == "forward"]
    return tuple(readable)
