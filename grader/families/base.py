"""What the grader knows about one model family's module tree: the seam between the grader and a model.

A family is data (in the spirit of TransformerLens' `supported_architectures/*.py` component mappings):
where the decoder layers live, the class a decoder layer has, where each of the seven sites of the
vocabulary (grader/spec/sites.py: resid_pre, ln1_out, attn_out, resid_mid, ln2_out, mlp_out,
resid_post) is read (a module path relative to the layer and a hook kind), which module's first input
holds which site, what a printed model shows for Part 2, and how its miniature is built (the config
fields it shrinks and the parameters it draws, in order). One module per family (grader/families/
qwen3.py, ...) defines one `Family`; grader/families/__init__.py is the registry.

Nothing here imports torch or the rest of the grader: sites are plain names, and the miniature's
parameters are described, not built (miniature/engineered.py draws them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Protocol

FORWARD, FORWARD_PRE = "forward", "forward_pre"


@dataclass(frozen=True)
class SitePlace:
    module: str  # path relative to the decoder layer; "" is the layer itself
    hook: str  # FORWARD_PRE: the module's first input; FORWARD: its output (the first item of a tuple)


@dataclass(frozen=True)
class Param:
    """One parameter of the miniature, drawn in declaration order (the order is part of the fixture).

    `name` may hold {layer}; `shape` names config fields or numbers, e.g. ("q_dim", "hidden_size").
    init: "ones", "zeros", "in" (standard normal / sqrt(fan_in), fan_in = the last dimension), "out"
    (writes only into the span of the three dominant directions: into_span @ N(0, 1)[3, fan_in] /
    sqrt(fan_in)), "embed" (the engineered token embeddings), "position" (small isotropic noise).
    `transposed`: stored as [in, out] (GPT-2's Conv1D) instead of torch.nn.Linear's [out, in].
    """

    name: str
    shape: tuple[str | int, ...]
    init: str
    transposed: bool = False


class ModelFamily(Protocol):
    """What the rest of the grader uses of a family (grader/families/base.Family implements it)."""

    name: str
    causal_lm: tuple[str, ...]
    base_models: tuple[str, ...]
    decoder_layer: str
    layers: str
    sites: Mapping[str, SitePlace]
    printed: tuple[str, ...]

    def layer_path(self, layer: int) -> str: ...
    def parse_module_path(self, path: str) -> tuple[int, str] | None: ...
    def sites_readable_by(self, relative_module: str, hook_kind: str) -> tuple[str, ...]: ...
    def generic_place(self, module: str) -> str: ...


@dataclass(frozen=True)
class Family:
    name: str  # the registry key, as assignment.toml names it ("qwen3")
    model_types: tuple[str, ...]  # config.json `model_type` values this family covers
    causal_lm: tuple[str, ...]  # the *ForCausalLM classes (config.json `architectures`)
    base_models: tuple[str, ...]  # AutoModel's classes: the same decoder layers, no LM head
    decoder_layer: str  # the class of one decoder layer, as print(model) shows it
    layers: str  # the ModuleList of decoder layers inside a *ForCausalLM ("model.layers")
    sites: Mapping[str, SitePlace]  # the seven sites of the vocabulary
    input_of: Mapping[str, str]  # relative module -> the site its first input holds
    printed: tuple[str, ...]  # what a printed model shows of a decoder layer (Part 2), all of them
    source_url: str  # the modeling file the assignment points students to
    shrink: tuple[str, ...]  # config fields a miniature takes from its pack's [miniature.config]
    # The miniature's parameters in draw order: `embeddings` first, then `layer` once per decoder layer
    # ({layer} in the names), then `final`.
    embeddings: tuple[Param, ...]
    layer: tuple[Param, ...]
    final: tuple[Param, ...]
    derived: Mapping[str, str] = field(default_factory=dict)  # shape names computed from the config, as expressions
    num_layers_key: str = "num_hidden_layers"  # the config field holding the layer count
    hidden_key: str = "hidden_size"  # the config field holding the residual stream's width
    diagram_note: str = ""  # what the reference's Part 2 diagram says under the boxes
    # A decoder layer's wiring, as the reference checks its captures: resid_mid = resid_pre + attn_out and
    # resid_post = resid_mid + mlp_out (pre-norm residual blocks: Llama, Qwen, GPT-2).
    wiring: tuple[tuple[str, str, str], ...] = (("resid_mid", "resid_pre", "attn_out"),
                                                ("resid_post", "resid_mid", "mlp_out"))

    # ---- module paths -----------------------------------------------------------------------
    @property
    def container(self) -> str:
        """The last name of the layers' path: 'layers' in model.layers, 'h' in transformer.h."""
        return self.layers.rsplit(".", 1)[-1]

    @property
    def base_layers(self) -> str:
        """Where the layers live in the base model (AutoModel): 'layers' for 'model.layers'."""
        return self.layers.split(".", 1)[1] if "." in self.layers else self.layers

    def layer_path(self, layer: int) -> str:
        """'model.layers.7': decoder layer N in a *ForCausalLM, as named_modules() spells it."""
        return f"{self.layers}.{layer}"

    def parse_module_path(self, path: str) -> tuple[int, str] | None:
        """'model.layers.7.mlp' -> (7, 'mlp'); 'model.layers.7' -> (7, ''); anything else -> None.
        The base model's spelling ('layers.7.mlp') is read too."""
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            if part == self.container and parts[i + 1].isdigit():
                return int(parts[i + 1]), ".".join(parts[i + 2:])
        return None

    def generic_place(self, module: str) -> str:
        """'model.layers.7.mlp' -> 'model.layers.N.mlp' (one name for the same place in every layer)."""
        parsed = self.parse_module_path(module)
        return module if parsed is None else f"{self.layers}.N" + (f".{parsed[1]}" if parsed[1] else "")

    def sites_readable_by(self, relative_module: str, hook_kind: str) -> tuple[str, ...]:
        """Which sites a hook of this kind on this module can read: a forward hook sees both the input and
        the output of its module; a pre-hook only the input."""
        readable = []
        if relative_module in self.input_of:
            readable.append(self.input_of[relative_module])
        if hook_kind.startswith("forward") and not hook_kind.startswith("forward_pre"):
            readable += [name for name, place in self.sites.items()
                         if place.module == relative_module and place.hook == FORWARD]
        return tuple(readable)

    def module_of(self, site: str) -> str:
        """The module (relative to the layer) a site is read at: 'input_layernorm' for ln1_out."""
        return self.sites[site].module

    @property
    def required_submodules(self) -> tuple[str, ...]:
        """The decoder layer's submodules the sites need (a model without them is not of this family)."""
        return tuple(dict.fromkeys(p.module for p in self.sites.values() if p.module))

    def is_model_class(self, name: str | None) -> bool:
        """Whether a loaded model's class is this family's *ForCausalLM or base model."""
        return name in self.causal_lm or name in self.base_models

    # ---- the miniature ----------------------------------------------------------------------
    def miniature_config(self, config: dict, shrink: Mapping[str, int]) -> dict:
        """The real model's config.json with the miniature's widths; refuses fields it does not shrink."""
        unknown = sorted(set(shrink) - set(self.shrink))
        if unknown:
            raise ValueError(f"the {self.name} miniature shrinks only {', '.join(self.shrink)}; found {unknown}")
        out = dict(config)
        out.update(shrink)
        return out

    def shape_env(self, config: dict) -> dict[str, int]:
        """Config fields and derived sizes (e.g. q_dim = heads * head_dim) by name, for Param shapes."""
        env = {k: v for k, v in config.items() if isinstance(v, int) and not isinstance(v, bool)}
        for name, expr in self.derived.items():
            env[name] = int(eval(expr, {"__builtins__": {}}, dict(env)))  # noqa: S307 - family data, not input
        return env


_SHAPE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def check_family(family: Family, site_names: tuple[str, ...]) -> list[str]:
    """What is wrong with a family's declaration (empty: nothing); the registry's test calls it."""
    problems = []
    missing = [s for s in site_names if s not in family.sites]
    if missing:
        problems.append(f"{family.name}: no place for the sites {missing}")
    for site, place in family.sites.items():
        if place.hook not in (FORWARD, FORWARD_PRE):
            problems.append(f"{family.name}: site {site} has hook kind {place.hook!r}")
    for module, site in family.input_of.items():
        if site not in family.sites:
            problems.append(f"{family.name}: input_of[{module!r}] names an unknown site {site!r}")
    for p in (*family.embeddings, *family.layer, *family.final):
        for dim in p.shape:
            if isinstance(dim, str) and not _SHAPE_NAME.match(dim):
                problems.append(f"{family.name}: parameter {p.name} has a shape name {dim!r}")
    return problems
