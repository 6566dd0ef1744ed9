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


# (file, value) pairs that name Qwen3 or the numbers 36/404 in code for another reason than the model
NOT_THE_MODEL = {
    ("grader/settings.py", "qwen3-interp-grader"), ("grader/settings.py", "qwen3-interp-selfcheck"),  # the project's
    ("grader/run/kit.py", "qwen3-interp-selfcheck"), ("miniature/hf_cache.py", "qwen3-interp-grader"),  # names
    ("grader/report/manual_points.py", "qwen3-interp-grader/manual-v1"),  # file-format tags
    ("grader/judge/golden.py", "qwen3-interp-grader/frozen-golden-v1"),
    ("grader/execute/sandbox.py", "/var/lib/qwen3-interp-grader"),
    ("grader/spec/pack.py", "sphere-qwen3"),  # the default pack's name
    ("grader/families/__init__.py", "qwen3"),  # the registry imports each family module
    ("grader/manual/review.py", 404),  # HTTP Not Found
    ("reference/dynamics.py", "the default assignment pack's prompt (grader/packs/sphere-qwen3/prompt.txt), "
                              "the model's own tokenizer, no chat template"),  # where the panel's prompt came from
}


def model_names_in_code(path: Path) -> list[tuple[int, object]]:
    """(line, value) of every Qwen3 spelled in code (names, attributes, imports, strings that are not
    docstrings) and every integer literal 36 or 404."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        words: list[object] = []
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            if isinstance(node.value, str):
                words.append(node.value)
            elif type(node.value) is int and node.value in (36, 404):
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.append(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            words += [a.name for a in node.names] + ([node.module] if getattr(node, "module", None) else [])
        found += [(node.lineno, w) for w in words if "qwen3" in str(w).lower()]
    return found


def test_only_the_qwen3_family_and_its_pack_name_the_model():
    """Outside grader/families/qwen3.py and the packs, no code names Qwen3, 36 layers or 404 tokens:
    the model and the prompt come from the pack (comments and docstrings may use them as examples)."""
    hits = []
    for pkg in ("grader", "reference", "miniature"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "grader/families/qwen3.py" or rel.startswith("grader/packs/"):
                continue
            hits += [f"{rel}:{line}: {value!r}" for line, value in model_names_in_code(path)
                     if (rel, value) not in NOT_THE_MODEL]
    assert not hits, "the model or its sizes spelled in code outside its family module and pack:\n" + "\n".join(hits)


def test_the_model_name_scan_sees_code_and_not_docstrings(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""Qwen3 with 36 layers."""\nfrom transformers import Qwen3Model\nN = 36\ndef f():\n'
                   '    """404 tokens, Qwen3."""\n    return "qwen3" + str(404)  # Qwen3\n')
    assert sorted(model_names_in_code(src), key=str) == sorted(
        [(2, "Qwen3Model"), (3, 36), (6, "qwen3"), (6, 404)], key=str)
