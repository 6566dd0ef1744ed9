"""Part 2's diagram: how tokens flow through one decoder layer, drawn from the model's module tree.

Boxes carry the module names and reprs exactly as `print(model)` shows them, the two skip
connections are drawn as arrows around the sub-blocks into the adds, and the seven sites of
grader/spec/sites.py label the residual stream and the sub-block outputs, at the modules the model's
family reads them at (grader/families/).
"""

from __future__ import annotations

from pathlib import Path

import torch

from grader.families.base import Family
from reference.model import decoder_layers


def _line(name: str, module: torch.nn.Module) -> str:
    """'q_proj: Linear(in_features=64, out_features=64, bias=False)', as print(model) spells it."""
    extra = module.extra_repr()
    return f"{name}: {type(module).__name__}({extra})" if extra else f"{name}: {type(module).__name__}()"


def describe_layer(layer: torch.nn.Module) -> dict[str, list[str]]:
    """The printed lines of each top-level block of a decoder layer (block name -> lines)."""
    blocks = {}
    for name, child in layer.named_children():
        lines = [_line(name, child) if not list(child.children()) else f"{name}: {type(child).__name__}"]
        lines += ["  " + _line(n, c) for n, c in child.named_children()]
        blocks[name] = lines
    return blocks


def draw_decoder_layer(model: torch.nn.Module, path: Path, family: Family) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    layers = decoder_layers(model, family)
    layer = layers[0]
    blocks = describe_layer(layer)
    ln1, attn, ln2, mlp = (family.module_of(s) for s in ("ln1_out", "attn_out", "ln2_out", "mlp_out"))
    line_h = 0.26  # height of one printed line, in axis units
    heights = {name: 0.25 + line_h * len(lines) for name, lines in blocks.items()}
    ln1_y = 1.3
    attn_y = ln1_y + heights[ln1] + 0.6
    add1 = attn_y + heights[attn] + 0.6
    ln2_y = add1 + 0.9
    mlp_y = ln2_y + heights[ln2] + 0.6
    add2 = mlp_y + heights[mlp] + 0.6
    top = add2 + 1.0
    fig, ax = plt.subplots(figsize=(10, top * 0.75))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, top + 0.4)
    ax.axis("off")
    stream_x, box_x, box_w = 1.2, 2.6, 6.9

    def box(y: float, name: str, color: str) -> tuple[float, float]:
        h = heights[name]
        ax.add_patch(FancyBboxPatch((box_x, y), box_w, h, boxstyle="round,pad=0.08", fc=color, ec="k", lw=1))
        ax.text(box_x + 0.15, y + h - 0.12, "\n".join(blocks[name]), va="top", ha="left", family="monospace",
                fontsize=8, linespacing=1.35)
        return y, y + h

    def arrow(p, q, **kw):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=12, lw=1.3, **kw))

    def add_node(y: float) -> None:
        ax.add_patch(plt.Circle((stream_x, y), 0.22, fc="white", ec="k", lw=1.3))
        ax.text(stream_x, y, "+", ha="center", va="center", fontsize=14)

    def site(y: float, name: str, x: float = stream_x - 0.3) -> None:
        ax.text(x, y, name, ha="right", va="center", fontsize=8, color="tab:red")

    ax.text(5, top + 0.2, f"{type(layer).__name__} (layer N of {len(layers)}), modules as printed by print(model)",
            ha="center", fontsize=11, weight="bold")
    ax.text(stream_x - 0.2, 0.05, "hidden_states from layer N-1 (the token embeddings for N = 0)", ha="left", fontsize=8)
    # residual stream, bottom (layer input) to top (layer output), through the two adds
    arrow((stream_x, 0.35), (stream_x, add1 - 0.22))
    arrow((stream_x, add1 + 0.22), (stream_x, add2 - 0.22))
    arrow((stream_x, add2 + 0.22), (stream_x, top))
    site(0.8, "resid_pre\n(layer input)")
    site(add1 + 0.55, "resid_mid")
    site(top - 0.2, "resid_post\n(layer output)")
    for (norm, block, norm_y, block_y, add_y, color, outs) in (
        (ln1, attn, ln1_y, attn_y, add1, "#fde9d9", ("ln1_out", "attn_out")),
        (ln2, mlp, ln2_y, mlp_y, add2, "#e2f0d9", ("ln2_out", "mlp_out")),
    ):
        n0, n1 = box(norm_y, norm, "#e8f1fb")
        b0, b1 = box(block_y, block, color)
        arrow((stream_x, norm_y - 0.3), (box_x - 0.08, (n0 + n1) / 2))
        arrow((box_x + 1, n1 + 0.08), (box_x + 1, b0 - 0.08))
        site((n1 + b0) / 2, outs[0], x=box_x + 0.95)
        arrow((box_x + 1, b1 + 0.08), (stream_x + 0.22, add_y), connectionstyle="arc3,rad=0.25")
        site(b1 + 0.35, outs[1], x=box_x + 0.95)
        ax.text(stream_x + 0.08, (norm_y + add_y) / 2, "skip connection", fontsize=7, rotation=90, va="center",
                ha="left", color="gray")
        add_node(add_y)
    ax.text(box_x, 0.6, family.diagram_note, fontsize=7.5, va="center")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
