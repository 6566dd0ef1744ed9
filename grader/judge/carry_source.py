"""Reading the student's code for the carried-forward run (grader/judge/carry.py): where Part 4's forward
is, which variable holds the captures when none was found, the form the hooks write, the provided
plotting cell. Syntax trees only; nothing is executed here.
"""

from __future__ import annotations

import ast
import re

from grader.spec.template import is_provided_plotting_cell

PART5_HEADING = re.compile(r"^\s*#+.*\bpart\s*5\b", re.I | re.M)
ITERATING = {"keys", "items", "values", "get"}
NOT_CAPTURES = {"model", "tokenizer", "inputs", "out", "outputs", "torch", "np", "plt", "imageio", "os", "F", "nn",
                "range", "len", "enumerate", "sorted", "print", "list", "dict", "zip", "frames", "images", "labels"}
TENSOR_METHODS = {"detach", "cpu", "clone", "contiguous", "to", "float", "half", "bfloat16", "double", "requires_grad_"}


def parse(source) -> ast.Module | None:
    """A code cell's syntax tree; IPython magics and shell escapes are blanked out first."""
    text = "".join(source) if isinstance(source, list) else str(source or "")
    for attempt in (text, re.sub(r"^(\s*)[%!].*$", r"\1pass", text, flags=re.M)):
        try:
            return ast.parse(attempt)
        except (SyntaxError, ValueError):
            continue
    return None


def code_cells(nb) -> list[tuple[int, ast.Module]]:
    out = []
    for index, cell in enumerate(nb.cells if nb is not None else []):
        if cell.cell_type == "code" and cell.source.strip():
            tree = parse(cell.source)
            if tree is not None:
                out.append((index, tree))
    return out


def inject_cell(forwards: list[dict], nb) -> tuple[int | None, str]:
    """The cell index after which the captures are injected: the student's Part 4 forward (the last cell
    that ran the prompt: the forward with the most tokens), else the last code cell before their Part 5
    heading; (None, why) when neither exists."""
    runs = [f for f in forwards or [] if f.get("cell") is not None and (f.get("n_tokens") or 0) > 1]
    if runs:
        most = max(f["n_tokens"] for f in runs)
        cell = max(f["cell"] for f in runs if f["n_tokens"] == most)
        return cell, "the cell of your Part 4 forward"
    cells = nb.cells if nb is not None else []
    headings = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and PART5_HEADING.search(c.source)
                and not c.source.lstrip().startswith("# TASK")]  # the assignment's task text names Part 5 too
    if headings:
        before = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.strip() and i < headings[-1]]
        if before:
            return before[-1], "the last code cell before your Part 5 heading (no forward ran)"
    return None, "no forward pass ran and no Part 5 heading was found"


def plotting_cell(nb, after: int, pack=None) -> tuple[int | None, str | None]:
    """(index, fed variable) of the pack's provided plotting cell, unchanged, after cell `after`."""
    for index, cell in enumerate(nb.cells if nb is not None else []):
        if index > after and cell.cell_type == "code" and is_provided_plotting_cell(cell.source, pack):
            tree = parse(cell.source)
            for node in ast.walk(tree) if tree else []:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                        and node.targets[0].id == "projected_values" and isinstance(node.value, ast.Subscript) \
                        and isinstance(node.value.value, ast.Name):
                    return index, node.value.value.id
    return None, None


def _params(fn) -> list[str]:
    args = fn.args
    return [a.arg for a in [*args.posonlyargs, *args.args]]


def _own_nodes(fn):
    """The nodes of a function's body, not those of the functions defined inside it."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def hook_writes(cells: list[tuple[int, ast.Module]]) -> list[dict]:
    """What functions (hooks) write into global containers: [{"name", "layout", "value", "params"}] in order.
    `store[k] = v`, `store.__setitem__(k, v)` (a lambda), `store.append(v)`, `store[k].append(v)`."""
    found = []
    for _, tree in cells:
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.Lambda)):
                continue
            params = _params(fn)
            local = {n.id for n in _own_nodes(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            for node in _own_nodes(fn):
                target, value, layout = None, None, None
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
                    target, value, layout = node.targets[0].value, node.value, "dict"
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                    attr = node.func.attr
                    if attr == "__setitem__" and len(node.args) == 2:
                        target, value, layout = node.func.value, node.args[1], "dict"
                    elif attr == "append":
                        owner = node.func.value
                        target = owner.value if isinstance(owner, ast.Subscript) else owner
                        value, layout = node.args[0], "dict" if isinstance(owner, ast.Subscript) else "list"
                        if isinstance(owner, ast.Subscript):
                            value = ast.List(elts=[value], ctx=ast.Load())  # one list per layer (per forward)
                if isinstance(target, ast.Name) and target.id not in params and target.id not in local:
                    found.append({"name": target.id, "layout": layout, "value": value, "params": params})
    return found


def downstream_reads(cells: list[tuple[int, ast.Module]], skip: set[int]) -> list[str]:
    """Names the later cells read as containers (subscripted, .keys()/.items(), iterated, len/sorted) before
    assigning them, in order of first use."""
    order, assigned = [], set()
    for index, tree in cells:
        if index in skip:
            continue
        assigned |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.ctx, ast.Load):
                name = node.value.id
            elif isinstance(node, ast.Attribute) and node.attr in ITERATING and isinstance(node.value, ast.Name):
                name = node.value.id
            elif isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.iter, ast.Name):
                name = node.iter.id
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("len", "sorted") \
                    and node.args and isinstance(node.args[0], ast.Name):
                name = node.args[0].id
            if name and name not in NOT_CAPTURES and name not in assigned and name not in order:
                order.append(name)
    return order


def form_of(value: ast.AST | None, params: list[str]) -> dict:
    """The form a hook's stored expression has: {"wrapper", "lib", "batch", "dtype"} (defaults: torch, [1, N, d])."""
    form = {"wrapper": None, "lib": "torch", "batch": True, "dtype": None}
    if isinstance(value, ast.List) and len(value.elts) == 1:
        form["wrapper"] = "per_forward_list"
        value = value.elts[0]
    zeros, node = 0, value
    while node is not None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr == "numpy":
                form["lib"] = "numpy"
            elif attr == "squeeze":
                form["batch"] = False
            elif attr in ("float", "half", "bfloat16", "double"):
                form["dtype"] = form["dtype"] or {"float": "float32", "half": "float16", "bfloat16": "bfloat16",
                                                  "double": "float64"}[attr]
            elif attr not in TENSOR_METHODS:
                return form
            node = node.func.value
        elif isinstance(node, ast.Subscript):
            index = node.slice
            if isinstance(index, ast.Constant) and index.value == 0:
                zeros += 1
            node = node.value
        elif isinstance(node, ast.Name):
            position = params.index(node.id) if node.id in params else None
            if position == 1:  # args / input: a tuple; its [0] is the hidden states
                if zeros == 0:
                    form["wrapper"] = "tuple"
                zeros -= 1
            elif position == 2 and zeros >= 1:  # output[0]: a module that returns a tuple
                zeros -= 1
            if zeros >= 1:
                form["batch"] = False
            return form
        else:
            return form
    return form


def find_variable(nb, inject_after: int) -> tuple[str | None, dict, str]:
    """When no captures were found: (variable, fallback {"layout", "form"}, how it was found), from what the
    hooks write and what the student's later code reads; (None, {}, why) when neither names one."""
    cells = code_cells(nb)
    upstream = [(i, t) for i, t in cells if i <= inject_after]
    later = [(i, t) for i, t in cells if i > inject_after]
    plot, _ = plotting_cell(nb, inject_after)
    writes = hook_writes(upstream) or hook_writes(cells)
    reads = downstream_reads(later, {plot} if plot is not None else set())
    written = {w["name"]: w for w in reversed(writes)}  # the first write of each name wins
    both = [n for n in reads if n in written]
    if both:
        name, how = both[0], "the variable your hooks write and your Part 5 code reads"
    elif writes:
        name, how = writes[0]["name"], "the variable your hooks write"
    elif (unset := [n for n in reads if n not in {x.id for _, t in upstream for x in ast.walk(t)
                                                  if isinstance(x, ast.Name) and isinstance(x.ctx, ast.Store)}]):
        name, how = unset[0], "the variable your Part 5 code reads (no hook writes one)"
    else:
        return None, {}, ("no captures variable could be found: your hooks write into no variable and your Part 5 "
                          "code reads none that your earlier code fills")
    w = written.get(name)
    fallback = {"layout": w["layout"] if w else "dict", "form": form_of(w["value"], w["params"]) if w else {}}
    return name, fallback, how
