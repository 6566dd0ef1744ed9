"""Error carried forward by re-execution (issue 18, grader/judge/carry.py, grader/execute/carry.py).

One `grade` batch (module fixture, real kernels on the miniature, 2 workers) of catalog notebooks whose
mistake is upstream of Part 5, alone or with a Part 5 mistake of their own, and one correct notebook.
Then cheap checks without kernels: the switch, the container forms the injector builds, what the
student's code says about the variable and its form.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures.notebooks import build, get, write_all
from grader.execute import carry_kernel
from grader.judge import carry_source
from grader.judge.carry import DEFAULT_CHECKS, CarryForwardConfig

UPSTREAM_ONLY = ("generate_overwrites", "closure_bug_one_key", "hooks_removed_early", "hook_cell_crash",
                 "closure_bug_real_plot")
WITH_PART5_MISTAKE = {"closure_bug_no_centering": "p5.projection_match",
                      "hooks_removed_no_normalisation": "p5.unit_norm",
                      "hook_crash_u_without_s": "p5.projection_match"}
WRONG_SITE = "wrong_site_mlp"  # Part 5 already passes on its own captures: run again, credited nothing new
WRONG_PROMPT_TOO = "closure_bug_wrong_prompt"  # Part 4 wrong as well: correct captures on the student's tokens
CORRECT = "correct_layer_prehook"
NAMES = (*UPSTREAM_ONLY, *WITH_PART5_MISTAKE, WRONG_SITE, WRONG_PROMPT_TOO, CORRECT)
NOTE = "Part 5 was also run on correct captures"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    from grader.cli import main

    src = tmp_path_factory.mktemp("carry_in")
    write_all(src, list(NAMES))
    out = tmp_path_factory.mktemp("carry_out") / "grading"
    assert main([str(src), "--out", str(out), "--workers", "2"]) == 0
    return out


def results(out: Path, name: str) -> dict:
    return json.loads((out / name / "results.json").read_text())


def checks(res: dict) -> dict[str, dict]:
    return {c["id"]: c for c in res["extra_data"]["checks"]}


def output(res: dict, cid: str) -> str:
    return next(t["output"] for t in res["tests"] if t["name"].startswith(cid + ":"))


@pytest.mark.parametrize("name", UPSTREAM_ONLY)
def test_upstream_only_mistakes_credit_every_part5_check(graded, name):
    exp, res = get(name).expect, results(graded, name)
    by_id = checks(res)
    assert set(exp["carried"]) == DEFAULT_CHECKS
    for cid in DEFAULT_CHECKS:  # every Part 5 check passes on the carried-forward run, and says so
        assert by_id[cid]["status"] == "passed", output(res, cid)
        assert by_id[cid]["judged_on"] == "carried_forward"
        assert output(res, cid).startswith(NOTE) and "(no points lost for Part 5)" in output(res, cid)
        assert "On your own captures:" in output(res, cid)
    for cid in ("p3.hooks_every_layer", "p3.hook_site", "p3.captures_match"):  # Part 3 fails as before
        assert (by_id[cid]["status"] != "passed") == (cid in exp["fails"]), output(res, cid)
    cf = res["extra_data"]["carried_forward"]
    assert cf["ran"] and not cf["problem"] and sorted(cf["judged_on_carried_run"]) == sorted(DEFAULT_CHECKS)
    assert (graded / name / "carry" / "execution.json").is_file()
    assert 'id="carry"' in (graded / name / "report.html").read_text()  # the report shows both runs


def test_the_note_says_why_in_the_students_words(graded):
    why = {"generate_overwrites": "the last step of generate()",
           "closure_bug_one_key": "your hooks wrote every layer into the same entry of `acts`",
           "hooks_removed_early": "your hooks had been removed before it ran",
           "hook_cell_crash": "nothing was captured in Part 3 (cell In [4] raised NameError: name 'handles' is not defined)"}
    for name, phrase in why.items():
        assert phrase in output(results(graded, name), "p5.projection_match"), name
    cf = results(graded, "hook_cell_crash")["extra_data"]["carried_forward"]
    assert cf["found"] == "missing" and cf["variable"] == "store"  # no variable: the form the code reads
    assert cf["built"] == "a dict of 36 layers keyed 0..35, each torch float32 [1, N, d]"
    plot = results(graded, "closure_bug_real_plot")["extra_data"]["carried_forward"]["plot"]
    assert plot == {"variable": "pcas", "frames": 36, "ename": None, "evalue": None, "layers": 36}  # not drawn


@pytest.mark.parametrize("name", list(WITH_PART5_MISTAKE))
def test_a_part5_mistake_of_its_own_still_fails(graded, name):
    exp, res = get(name).expect, results(graded, name)
    by_id, broken = checks(res), WITH_PART5_MISTAKE[name]
    assert by_id[broken]["status"] == "failed" and "judged_on" not in by_id[broken]
    assert "On them this check still fails" in output(res, broken)
    credited = sorted(cid for cid, c in by_id.items() if c.get("judged_on") == "carried_forward")
    assert credited == exp["carried"] == sorted(DEFAULT_CHECKS - {broken})
    assert res["extra_data"]["carried_forward"]["checks"][broken] == {"own": "failed", "carried": "failed",
                                                                      "credited": False}
    from grader.results import Result

    check = next(c for c in Result.read(graded / name).checks if c.id == broken)
    assert check.hint and "still fails" in check.text("brief")  # what is wrong, on both runs; not how to fix it
    assert all(part.strip() not in check.text("brief") for part in check.hint.split("\n") if part.strip())


def test_wrong_site_is_run_again_and_keeps_its_points(graded):
    res = results(graded, WRONG_SITE)
    assert res["score"] == 60.0
    cf = res["extra_data"]["carried_forward"]
    assert cf["ran"] and cf["judged_on_carried_run"] == []  # passed on its own captures already
    assert "(mlp_out)" in cf["reason"] and NOTE in output(res, "p5.projection_match")
    assert checks(res)["p3.captures_match"]["status"] == "failed"


def test_with_a_wrong_prompt_too_the_correct_captures_are_on_the_students_tokens(graded):
    res = results(graded, WRONG_PROMPT_TOO)
    by_id = checks(res)
    assert by_id["p4.prompt_exact"]["status"] == "failed" and by_id["p3.captures_match"]["status"] == "failed"
    assert all(by_id[cid]["judged_on"] == "carried_forward" for cid in DEFAULT_CHECKS)
    plan = json.loads((graded / WRONG_PROMPT_TOO / "carry" / "carry.json").read_text())["plan"]
    assert plan["tokens"] == "student_prompt"
    shapes = json.loads((graded / WRONG_PROMPT_TOO / "carry" / "comparison.json").read_text())["projections"]["shapes"]
    assert shapes[0][0] == 3 and 300 < shapes[0][1] < 404  # N = the student's own token count


def test_a_correct_notebook_is_not_run_again(graded):
    res = results(graded, CORRECT)
    assert res["score"] == 85.0
    assert "carried_forward" not in res["extra_data"]
    assert not any("judged_on" in c for c in res["extra_data"]["checks"])
    assert not (graded / CORRECT / "carry").exists()
    assert NOTE not in json.dumps(res) and 'id="carry"' not in (graded / CORRECT / "report.html").read_text()


def test_the_switch_turns_it_off(graded, tmp_path):
    from grader.cli import build_parsers, settings_from
    from grader.intake.submission import SubmissionInfo
    from grader.pipeline import conclude

    args = build_parsers()["grade"].parse_args(["x.ipynb", "--no-carry-forward"])
    settings = settings_from(args)
    assert settings.carry_forward is False and build_parsers()["grade"].parse_args(["x.ipynb"]).no_carry_forward is False
    copy = tmp_path / "closure_bug_one_key"
    shutil.copytree(graded / "closure_bug_one_key", copy, ignore=shutil.ignore_patterns("carry"))
    info = SubmissionInfo.from_json(json.loads((copy / "submission.json").read_text()), copy.name)
    grade = conclude(info, copy, settings)  # judged again from the first run's files, no second run
    res = results(tmp_path, "closure_bug_one_key")
    assert grade.score == res["score"] == 40.0 and "carried_forward" not in res["extra_data"]
    assert sorted(c.id for c in grade.failed if not c.manual) == get("closure_bug_one_key").expect["fails"]


def test_config_defaults_and_pack_mapping():
    cfg = CarryForwardConfig()
    assert cfg.enabled and cfg.checks == {"p5.projection_shape", "p5.unit_norm", "p5.projection_match", "p5.gif"}

    class Entry:
        def __init__(self, carry):
            self.carry_forward = carry

    class Pack:
        carry_forward = type("CF", (), {"enabled": False})()
        rubric = type("R", (), {"checks": {"p5.gif": Entry(True), "p3.hook_site": Entry(False)}})()

    assert CarryForwardConfig.from_pack(Pack()) == CarryForwardConfig(enabled=False, checks=frozenset({"p5.gif"}))


# --- the injector's forms, without a kernel -----------------------------------------------------------

LAYERS = [np.full((4, 8), i, np.float32) for i in range(36)]


def _build(existing, fallback=None):
    return carry_kernel._build(existing, LAYERS, 36, fallback or {})


def test_forms_follow_the_students_container():
    import torch

    value, _ = _build({"model.layers.35": (torch.zeros(1, 4, 8, dtype=torch.bfloat16), None)})
    assert list(value)[:2] == ["model.layers.0", "model.layers.1"] and len(value) == 36
    item = value["model.layers.7"]
    assert isinstance(item, tuple) and item[1] is None and item[0].dtype == torch.bfloat16
    assert item[0].shape == (1, 4, 8) and float(item[0][0, 0, 0]) == 7.0
    value, _ = _build({k: np.zeros((4, 8), np.float64) for k in range(1, 37)})  # numpy, keys 1..36, no batch
    assert sorted(value) == list(range(1, 37)) and value[1].dtype == np.float64 and value[8][0, 0] == 7.0
    value, _ = _build([torch.zeros(4, 8)] * 3)  # a list in layer order, [N, d]
    assert isinstance(value, list) and len(value) == 36 and value[5].shape == (4, 8)
    value, words = _build(torch.zeros(36, 1, 4, 8))  # one stacked tensor
    assert value.shape == (36, 1, 4, 8) and "stacked" in words
    value, _ = _build({"layer_3": [torch.zeros(1, 4, 8), torch.zeros(1, 1, 8)]})  # one list per forward
    assert isinstance(value["layer_0"], list) and value["layer_0"][0].shape == (1, 4, 8)
    value, _ = _build({0: torch.zeros(1, 4, 8, requires_grad=True)})
    assert value[3].requires_grad  # .numpy() without .detach() fails on correct captures too
    value, _ = _build(None, {"layout": "dict", "form": {"lib": "torch", "batch": True}})
    assert sorted(value) == list(range(36)) and tuple(value[0].shape) == (1, 4, 8)


def test_the_variable_and_form_are_read_off_the_students_code():
    nb = build("hook_cell_crash")
    after, _ = carry_source.inject_cell([{"cell": 10, "n_tokens": 404}], nb)
    assert after == 10
    name, fallback, how = carry_source.find_variable(nb, after)
    assert name == "store" and fallback == {"layout": "dict", "form": {"wrapper": None, "lib": "torch",
                                                                      "batch": True, "dtype": None}}
    assert "hooks write and your Part 5 code reads" in how
    name, _, _ = carry_source.find_variable(build("seed_notebook"), 13)
    assert name == "layers"  # the seed's hooks write `layers`, which is never defined
    (write,) = carry_source.hook_writes([(0, carry_source.parse("def h(m, inp, out):\n    d[0] = inp[0][0].cpu().numpy()"))])
    assert carry_source.form_of(write["value"], write["params"]) == {"wrapper": None, "lib": "numpy", "batch": False,
                                                                     "dtype": None}
    index, fed = carry_source.plotting_cell(build("closure_bug_real_plot"), 0)
    assert fed == "pcas" and index is not None
    assert carry_source.plotting_cell(build("seed_notebook"), 0) == (None, None)  # its loop was edited


def test_when_no_form_can_be_found_the_checks_say_so():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from grader.judge.carry import CarryOutcome, _annotate
    from grader.results import CheckResult

    nb = new_notebook(cells=[new_markdown_cell("## Part 4"), new_code_cell("out = model(**inputs)"),
                             new_markdown_cell("## Part 5"), new_code_cell("print('PCA goes here')")])
    name, fallback, why = carry_source.find_variable(nb, 1)
    assert name is None and fallback == {} and why.startswith("no captures variable could be found")
    failed = CheckResult("p5.gif", "GIF", 5, 0, "failed", "No tokens.gif.")
    judgement = type("J", (), {"checks": [failed, CheckResult("p1.model_loaded", "load", 5, 5, "passed", "")]})()
    outcome = CarryOutcome(ran=False, reason="nothing was captured in Part 3",
                           problem=f"Part 5 could not be run again on correct captures: {why}")
    _annotate(judgement, outcome, CarryForwardConfig())
    gif, loaded = judgement.checks
    assert gif.points == 0 and gif.notes == [outcome.note] and not loaded.notes
    assert outcome.note.startswith("Part 5 could not be run again on correct captures (nothing was captured in "
                                   "Part 3): no captures variable could be found")
