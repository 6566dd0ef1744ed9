"""The assignment's provided plotting cell, as the instructor ships it, and how to recognise it.

Part 5 ends with plotting code the students are given ("The rest of the plotting code is provided"):
one 6 x 6 in frame per layer with the prompt's token labels drawn in 3-D at dpi 100, then `tokens.gif`.
Drawing the labels is most of a notebook's run time; `grade` and `grade-check` run this cell (or
whatever variant of it the student wrote) as written and draw the labels blank
(grader/execute/fastplot.py), so nothing here decides what runs. The fixtures build their plotting
cells from `provided_plotting_cell()`, and the benchmarks tell the provided cell from a variant with
`is_provided_plotting_cell`.

"As given" is decided on the syntax tree, so whitespace, comments, blank lines and the quoting of
strings do not matter, and neither does the name of the variable the student feeds it
(`projected_values = pcas[layer_idx]`, `proj[layer_idx]`, ...). Anything else (a changed loop, a
skipped frame, an extra statement, a magic) makes it the student's own variant.
"""

from __future__ import annotations

import ast

import functools

from grader.spec.pack import Assignment, load_pack


def provided_plotting_cell(pack: Assignment | None = None) -> str:
    """The provided plotting cell of the pack (default: the default pack), verbatim, with its prompt's labels
    (the name fed to it is the one the assignment's skeleton suggests)."""
    return (pack or load_pack()).provided_plotting_cell


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


@functools.lru_cache(maxsize=8)
def _template_shape(folder) -> str | None:
    return _shape(load_pack(folder).provided_plotting_cell)


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def is_provided_plotting_cell(source, pack: Assignment | None = None) -> bool:
    """Whether a code cell's source is the pack's provided plotting code, unchanged up to whitespace,
    comments, blank lines, string quoting and the name of the variable it is fed."""
    text = _text(source)
    if "projected_values" not in text or "mimsave" not in text:  # cheap: most cells are not it
        return False
    return _shape(text) == _template_shape((pack or load_pack()).folder)
