"""What the recorded hook registrations say: which layers were hooked, where, and what they can read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from grader.families.base import Family
from grader.spec.sites import TARGET_SITE


@dataclass
class HookSummary:
    total: int
    by_layer: dict[int, list[dict]] = field(default_factory=dict)
    global_hooks: list[dict] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)  # hooks outside the decoder layers
    library: list[dict] = field(default_factory=list)  # registered by torch/transformers, not the student
    reads_target: set[int] = field(default_factory=set)  # layers with a hook that can read resid_pre
    placements: Counter = field(default_factory=Counter)  # "model.layers.N.mlp (forward hook)" -> count

    @property
    def layers(self) -> set[int]:
        return set(self.by_layer)

    def describe(self) -> str:
        """'36 x model.layers.N.mlp (forward hook)'."""
        return "; ".join(f"{n} x {where}" for where, n in self.placements.most_common())


def layer_ranges(layers) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans: list[list[int]] = []
    for n in sorted(set(layers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


KIND_WORDS = {
    "forward": "forward hook",
    "forward_pre": "forward pre-hook",
    "global_forward": "global forward hook",
    "global_forward_pre": "global forward pre-hook",
}


def _family(family: Family | None) -> Family:
    if family is not None:
        return family
    from grader.spec.pack import load_pack

    return load_pack().family


def summarize(hooks: list[dict], family: Family | None = None) -> HookSummary:
    """Only the student's own registrations count; hooks that torch or transformers registered
    internally (e.g. to collect output_hidden_states) are kept apart in `library`. Module paths are read
    with the model family's layer container (model.layers.N, transformer.h.N)."""
    family = _family(family)
    own = [h for h in hooks if h.get("origin", "student") == "student"]
    summary = HookSummary(total=len(own), library=[h for h in hooks if h.get("origin", "student") != "student"])
    for h in own:
        kind = h.get("kind", "forward")
        words = KIND_WORDS.get(kind, kind) + (", with_kwargs" if h.get("with_kwargs") else "")
        if kind.startswith("global"):
            summary.global_hooks.append(h)
            summary.placements[f"all modules ({words})"] += 1
            continue
        parsed = family.parse_module_path(h.get("module") or "")
        if parsed is None:
            summary.other.append(h)
            summary.placements[f"{h.get('module')} ({words})"] += 1
            continue
        layer, rel = parsed
        summary.by_layer.setdefault(layer, []).append(h)
        summary.placements[f"{family.generic_place(h['module'])} ({words})"] += 1
        if TARGET_SITE in family.sites_readable_by(rel, kind):
            summary.reads_target.add(layer)
    return summary


@dataclass
class HookGroup:
    """Registrations of one kind at one place (module path with N for the layer), for the report's table."""

    module: str
    module_type: str
    kind: str
    with_kwargs: bool
    removed: bool
    cell: int | None
    origin: str
    count: int = 0
    layers: list[int] = field(default_factory=list)
    reads: str = ""  # the sites these hooks can read, in words
    reads_target: bool = False

    @property
    def layer_text(self) -> str:
        return layer_ranges(self.layers) if self.layers else "–"


def hook_groups(hooks: list[dict], family: Family | None = None) -> list[HookGroup]:
    """Every registration (the student's and the libraries'), grouped by place, kind and cell."""
    family = _family(family)
    groups: dict[tuple, HookGroup] = {}
    for h in hooks:
        module = h.get("module") or ""
        parsed = family.parse_module_path(module)
        kind = h.get("kind", "forward")
        generic = family.generic_place(module)
        key = (generic, h.get("module_type"), kind, bool(h.get("with_kwargs")), bool(h.get("removed")), h.get("cell"),
               h.get("origin", "student"))
        g = groups.setdefault(key, HookGroup(generic, h.get("module_type") or "", kind, key[3], key[4], key[5], key[6]))
        g.count += 1
        if parsed is not None:
            g.layers.append(parsed[0])
            readable = family.sites_readable_by(parsed[1], kind)
            g.reads = ", ".join(readable) or "nothing of this layer's"
            g.reads_target = TARGET_SITE in readable
    for g in groups.values():
        g.reads = g.reads or "not a decoder layer module"
    return sorted(groups.values(), key=lambda g: (g.cell if g.cell is not None else 1e9, g.module))
