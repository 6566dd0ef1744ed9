"""What the recorded hook registrations say: which layers were hooked, where, and what they can read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reference.sites import TARGET_SITE, parse_module_path, sites_readable_by


@dataclass
class HookSummary:
    total: int
    by_layer: dict[int, list[dict]] = field(default_factory=dict)
    global_hooks: list[dict] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)  # hooks outside the decoder layers
    reads_target: set[int] = field(default_factory=set)  # layers with a hook that can read resid_pre
    placements: Counter = field(default_factory=Counter)  # "model.layers.N.mlp (forward hook)" -> count

    @property
    def layers(self) -> set[int]:
        return set(self.by_layer)

    def describe(self) -> str:
        """'36 x model.layers.N.mlp (forward hook)'."""
        return "; ".join(f"{n} x {where}" for where, n in self.placements.most_common())


KIND_WORDS = {
    "forward": "forward hook",
    "forward_pre": "forward pre-hook",
    "global_forward": "global forward hook",
    "global_forward_pre": "global forward pre-hook",
}


def summarize(hooks: list[dict]) -> HookSummary:
    summary = HookSummary(total=len(hooks))
    for h in hooks:
        kind = h.get("kind", "forward")
        words = KIND_WORDS.get(kind, kind) + (", with_kwargs" if h.get("with_kwargs") else "")
        if kind.startswith("global"):
            summary.global_hooks.append(h)
            summary.placements[f"all modules ({words})"] += 1
            continue
        parsed = parse_module_path(h.get("module") or "")
        if parsed is None:
            summary.other.append(h)
            summary.placements[f"{h.get('module')} ({words})"] += 1
            continue
        layer, rel = parsed
        summary.by_layer.setdefault(layer, []).append(h)
        generic = "model.layers.N" + (f".{rel}" if rel else "")
        summary.placements[f"{generic} ({words})"] += 1
        if TARGET_SITE in sites_readable_by(rel, kind):
            summary.reads_target.add(layer)
    return summary
