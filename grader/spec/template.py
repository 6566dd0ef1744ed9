"""The assignment's provided plotting cell, as the instructor ships it, and how to recognise it.

Part 5 ends with plotting code the students are given ("The rest of the plotting code is provided"):
one 6 x 6 in frame per layer with the 404 token labels drawn in 3-D at dpi 100, then `tokens.gif`.
Drawing the labels is most of a notebook's run time; `grade` and `grade-check` run this cell (or
whatever variant of it the student wrote) as written and draw the labels blank
(grader/execute/fastplot.py), so nothing here decides what runs. The fixtures build their plotting
cells from PROVIDED_PLOTTING_CELL, and the benchmarks tell the provided cell from a variant with
`is_provided_plotting_cell`.

"As given" is decided on the syntax tree, so whitespace, comments, blank lines and the quoting of
strings do not matter, and neither does the name of the variable the student feeds it
(`projected_values = pcas[layer_idx]`, `proj[layer_idx]`, ...). Anything else (a changed loop, a
skipped frame, an extra statement, a magic) makes it the student's own variant.
"""

from __future__ import annotations

import ast

from grader.spec.assignment import LABELS

# The provided cell, verbatim (the name fed to it is the one the assignment's skeleton suggests).
PROVIDED_PLOTTING_CELL = (
    "num_layers = model.config.num_hidden_layers\n"
    "frames = []\n"
    "\n"
    "for layer_idx in range(num_layers):\n"
    "\n"
    "    projected_values = pcas[layer_idx]\n"
    "\n"
    "    # PLOTTING CODE DO NOT TOUCH BELOW ===========\n"
    "    x, y, z = projected_values[0].numpy(), projected_values[1].numpy(), projected_values[2].numpy()\n"
    "\n"
    "    fig = plt.figure(figsize=(6, 6))\n"
    '    ax = fig.add_subplot(111, projection="3d")\n'
    "\n"
    "    u = torch.linspace(0, 2 * torch.pi, 100)\n"
    "    v = torch.linspace(0, torch.pi, 100)\n"
    '    u, v = torch.meshgrid(u, v, indexing="ij")\n'
    "    X = torch.cos(u) * torch.sin(v)\n"
    "    Y = torch.sin(u) * torch.sin(v)\n"
    "    Z = torch.cos(v)\n"
    '    ax.plot_surface(X.numpy(), Y.numpy(), Z.numpy(), color="c", alpha=0.1, edgecolor="none")\n'
    "\n"
    '    ax.scatter(x, y, z, color="b", s=50)\n'
    "    labels = " + repr(LABELS) + "\n"
    "    for xi, yi, zi, label in zip(x, y, z, labels):\n"
    '            ax.text(xi, yi, zi, label, fontsize=10, color="k")\n'
    "\n"
    "    ax.set_box_aspect([1,1,1])\n"
    "\n"
    '    fname = f"frame_{layer_idx}.png"\n'
    '    plt.savefig(fname, dpi=100, bbox_inches="tight")\n'
    "    frames.append(fname)\n"
    "    plt.close(fig)\n"
    "\n"
    "images = [imageio.imread(f) for f in frames]\n"
    'imageio.mimsave("tokens.gif", images, duration=1.0)'
)

FED_VARIABLE = "__projections__"  # what the fed variable's name becomes before comparing


class _Normalise(ast.NodeTransformer):
    """Rename the variable fed to the loop (`projected_values = NAME[...]`) to one fixed name."""

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        target = node.targets[0] if len(node.targets) == 1 else None
        value = node.value
        if (isinstance(target, ast.Name) and target.id == "projected_values" and isinstance(value, ast.Subscript)
                and isinstance(value.value, ast.Name)):
            value.value = ast.Name(id=FED_VARIABLE, ctx=ast.Load())
        return node


def _shape(source: str) -> str | None:
    """The cell's syntax tree as text, with the fed variable renamed; None when it is not plain Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # IPython magics, shell escapes, null bytes: not the provided cell
        return None
    return ast.dump(_Normalise().visit(tree), annotate_fields=False, include_attributes=False)


_TEMPLATE_SHAPE = _shape(PROVIDED_PLOTTING_CELL)


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def is_provided_plotting_cell(source) -> bool:
    """Whether a code cell's source is the provided plotting code, unchanged up to whitespace, comments,
    blank lines, string quoting and the name of the variable it is fed."""
    text = _text(source)
    if "projected_values" not in text or "mimsave" not in text:  # cheap: most cells are not it
        return False
    return _shape(text) == _TEMPLATE_SHAPE
