"""grader/report/similarity.py: copied code and answers are flagged, independent work is not."""

from __future__ import annotations

import ast
import builtins
import copy
import io
import itertools
import json
import keyword
import random
import tokenize

import pytest

from fixtures.notebooks import FAST, build
from fixtures.notebooks.catalog import CATALOG
from grader.judge.evidence import answer_text
from grader.report import similarity as S

# Correct notebooks whose authors wrote hooks and PCA in the usual, different ways (plus one mistake).
INDEPENDENT = ["correct_layer_prehook", "correct_ln_prehook", "correct_numpy_svd", "correct_sklearn", "wrong_site_mlp"]
# Notebooks with enough code of their own for a disguised copy to stand out from the class's common code.
COPIED = ["correct_named_modules", "correct_numpy_eigh", "correct_stacked_projections", "wrong_site_mlp"]


def _user_names(sources: list[str]) -> set[str]:
    names = set()
    for src in sources:
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {n for n in names if n not in dir(builtins) and not keyword.iskeyword(n)}


def _rewrite(src: str, mapping: dict[str, str]) -> str:
    """Rename variables (not attributes), reword every comment; the code still parses."""
    out, prev = [], None
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        text = tok.string
        if tok.type == tokenize.NAME and text in mapping and prev != ".":
            text = mapping[text]
        elif tok.type == tokenize.COMMENT:
            text = "# (my own note)"
        out.append((tok.type, text))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok.string
    return tokenize.untokenize(out)


def disguise(nb, seed: int = 0):
    """A copy with renamed variables, reworded comments, two cells merged and all cells shuffled."""
    rng = random.Random(seed)
    nb = copy.deepcopy(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    names = sorted(_user_names([c.source for c in code]))
    mapping = {n: f"{rng.choice('abcdxyz')}_{i}_{rng.randrange(1000)}" for i, n in enumerate(names)}
    for cell in code:
        cell.source = _rewrite(cell.source, mapping)
        ast.parse(cell.source)
    code[1].source += "\n" + code[2].source
    nb.cells.remove(code[2])
    rng.shuffle(nb.cells)
    return nb


@pytest.fixture(scope="module")
def notebooks():
    return {name: build(name) for name in FAST}


@pytest.fixture(scope="module")
def class_fps(notebooks):
    return {name: S.fingerprint(nb, answer_text(nb)) for name, nb in notebooks.items()}


def _pair(pairs, a, b):
    found = [p for p in pairs if {p.a, p.b} == {a, b}]
    return found[0] if found else None


def test_disguise_really_changes_the_text(notebooks):
    nb = notebooks["correct_named_modules"]
    other = disguise(nb)
    assert [c.source for c in other.cells] != [c.source for c in nb.cells]
    assert "captured" in "".join(c.source for c in nb.cells)
    assert "captured" not in "".join(c.source for c in other.cells)


def test_normalisation_keeps_attributes_and_keywords_but_not_names():
    tokens = S.normalise_code("import torch\nh = model.layers[0].register_forward_pre_hook(fn, with_kwargs=True)  # x\n")
    assert tokens == ["V", "=", "V", ".", "layers", "[", "0", "]", ".", "register_forward_pre_hook", "(", "V", ",",
                      "with_kwargs", "=", "True", ")", ";"]
    assert S.normalise_code('s = "a"\n\n# only a comment\n') == ["V", "=", "S", ";"]


def test_provided_code_is_removed():
    from fixtures.notebooks import cells as C

    plot = S.normalise_code(C.real_plot("pcas"))
    assert plot.count("S") == 1  # the 404 labels went with the plotting block; "tokens.gif" is after the loop
    assert "plot_surface" not in plot and "scatter" not in plot and len(plot) < 60
    assert S.normalise_code(C.prompt_literal()) == []
    assert S.normalise_code(C.imports()) == []


def test_broken_code_still_fingerprints():
    fp = S.fingerprint({"cells": [{"cell_type": "code", "source": "for i in range(3:\n  x = 'unterminated\n" * 5}]},
                       None)
    assert fp.code and fp.answer == []


def test_independent_notebooks_do_not_pair_on_code(class_fps):
    pairs = S.similar_pairs(class_fps)
    for a, b in itertools.combinations(INDEPENDENT, 2):
        p = _pair(pairs, a, b)
        assert p is None or "code" not in p.reason, (a, b, p)


@pytest.mark.parametrize("name", COPIED)
def test_disguised_copy_is_flagged_in_the_class(notebooks, class_fps, name):
    fps = dict(class_fps, copy=S.fingerprint(disguise(notebooks[name]), "I wrote this one myself, honestly, all of it."))
    pairs = S.similar_pairs(fps)
    p = _pair(pairs, name, "copy")
    assert p is not None and p.code_score >= 0.9 and "code" in p.reason, p
    assert p.answer_score is not None and p.answer_score < 0.1
    # the copy pairs on code with no one its original does not already pair with in the class (two fixture
    # notebooks built from the same helper cell, e.g. the seed's pca_lowrank, may pair; their copies then do too)
    partners = {q.a if q.b == name else q.b for q in S.similar_pairs(class_fps)
                if name in (q.a, q.b) and "code" in q.reason}
    others = [q for q in pairs if "copy" in (q.a, q.b) and q is not p and "code" in q.reason]
    assert all((q.a if q.b == "copy" else q.b) in partners for q in others), (others, partners)


def test_disguised_copy_of_the_usual_code_is_flagged_between_two(notebooks):
    """Without a class to tell the usual code apart, a copy of even the most common code is flagged."""
    nb = notebooks["correct_layer_prehook"]
    fps = {"a": S.fingerprint(nb, None), "b": S.fingerprint(disguise(nb, seed=3), None)}
    (p,) = S.similar_pairs(fps)
    assert p.code_score >= 0.9 and p.answer_score is None


def test_shared_catalog_answers_flag_and_different_ones_do_not(class_fps):
    pairs = S.similar_pairs(class_fps)
    answers = {n: CATALOG[n].cells[-1][1] for n in FAST}
    for a, b in itertools.combinations(INDEPENDENT, 2):
        p = _pair(pairs, a, b)
        if answers[a] == answers[b]:
            assert p is not None and p.answer_score == 1.0 and "answer identical" in p.reason
        else:
            assert p is None or p.answer_score is None or p.answer_score < 0.1, p


def test_near_identical_answer_is_flagged_and_a_rewrite_is_not():
    base = ("As the tokens go deeper into the model they gradually collapse into a few tight clusters on the "
            "sphere, and by the last layers most of them point in almost the same direction.")
    near = "**Answer:** as the tokens go deeper into the model, they gradually collapse into a few TIGHT clusters " \
           "on the sphere; by the last layers most of them point in almost the same direction!"
    own = ("Early on the points are spread out over the sphere; deeper in, they bunch together and one token "
           "sits apart from all the others.")
    fps = {n: S.fingerprint({"cells": []}, t) for n, t in {"base": base, "near": near, "own": own}.items()}
    pairs = S.similar_pairs(fps)
    assert _pair(pairs, "base", "near").answer_score >= 0.6
    assert _pair(pairs, "base", "own") is None and _pair(pairs, "near", "own") is None


def test_fingerprint_json_round_trip(notebooks):
    nb = notebooks["correct_numpy_eigh"]
    fp = S.fingerprint(nb, answer_text(nb))
    again = S.Fingerprint.from_json(json.loads(json.dumps(fp.to_json())))
    assert again == fp
    with pytest.raises(ValueError, match="recompute"):
        S.Fingerprint.from_json(dict(fp.to_json(), params="k5w4s3"))


def test_pairs_are_json_serialisable(class_fps):
    pairs = S.similar_pairs(class_fps)
    assert pairs and json.loads(json.dumps([p.to_json() for p in pairs]))[0]["reason"]


def test_side_by_side_matches_cells(notebooks):
    nb = notebooks["correct_named_modules"]
    other = disguise(nb)
    matched = S.side_by_side(nb, other)
    assert len(matched) >= 4
    hooks_src = next(c.source for c in nb.cells if "named_modules" in c.source)
    (row,) = [m for m in matched if m[0] == hooks_src]
    assert "named_modules" in row[1] and row[2] >= 0.9
    assert all(0 < score <= 1 for _, _, score in matched)
    assert S.side_by_side(nb, notebooks["correct_sklearn"]) != matched


def test_functions_are_short():
    import inspect

    source = inspect.getsource(S)
    assert len(source.splitlines()) < 400
    for name, fn in inspect.getmembers(S, inspect.isfunction):
        if fn.__module__ == S.__name__:
            assert len(inspect.getsource(fn).splitlines()) < 60, name
