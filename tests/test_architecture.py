"""The tree stays the pipeline: no import cycles among the project's modules (imports inside functions
count), none among its packages either (grader's stages: intake, execute, judge, report, manual, run, ...,
each a node, with the top-level modules as nodes of their own), no module over 400 lines, at most 8
modules at grader/'s top level."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("grader", "reference", "miniature", "fixtures")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (`from pkg import mod` counts as pkg.mod, not pkg)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in PACKAGES and (found := resolve(target)) and found != mod:
                    graph[mod].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def package_of(module: str) -> str:
    """grader.judge.rubric.runner -> grader.judge (a stage); grader.settings and reference.model stay themselves."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, targets in graph.items():
        out.setdefault(package_of(mod), set())
        for t in targets:
            if package_of(t) != package_of(mod):
                out[package_of(mod)].add(package_of(t))
                out.setdefault(package_of(t), set())
    return out


def test_no_import_cycles_among_packages():
    loops = cycles(package_graph(import_graph()))
    assert loops == [], f"packages that import each other (a stage must only use the ones before it): {loops}"


def test_the_package_graph_sees_a_loop_the_module_graph_does_not():
    modules = {"grader.a.x": {"grader.b.y"}, "grader.b.y": set(), "grader.b.z": {"grader.a.w"}, "grader.a.w": set()}
    assert cycles(modules) == []
    assert cycles(package_graph(modules)) == [["grader.a", "grader.b"]]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_grader_top_level_is_small():
    top = sorted(p.name for p in (REPO / "grader").glob("*.py"))
    assert len(top) <= 8, top
