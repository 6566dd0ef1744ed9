"""End to end: `grade` on every fixture notebook, in real kernels on the miniature, against the
verdicts the catalog says each one deserves (fixtures/notebooks/catalog.py).

One batch (session fixture) holds every fast catalog notebook, the two that run the assignment's
real plotting code, and the submission forms `grade` must accept: a Canvas-named file with its
diagram, a zip, and a per-student folder. Each test reads the batch's output files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.notebooks import FAST, SLOW, get
from grader.judge.rubric.config import CHECK_IDS
from grader.spec.pack import load_pack

NUM_LAYERS = load_pack().n_layers
from grader.spec.sites import SITE_NAMES

from tests.conftest import CANVAS_ID

MANUAL = {"p2.diagram", "p5.explanation"}


def results(batch: Path, sid: str) -> dict:
    return json.loads((batch / sid / "results.json").read_text())


def execution(batch: Path, sid: str) -> dict:
    return json.loads((batch / sid / "execution.json").read_text())


def failed_automated(res: dict) -> list[str]:
    return sorted(c["id"] for c in res["extra_data"]["checks"] if not c["manual"] and c["status"] != "passed")


@pytest.mark.parametrize("name", list(FAST) + list(SLOW))
def test_verdicts_match_the_catalog(batch, name):
    expect = get(name).expect
    res = results(batch, name)
    extra = res["extra_data"]
    assert extra["status"] == expect["status"], extra["reason"]
    final = sorted(set(expect["fails"]) - set(expect["carried"]))  # carried: credited on correct captures
    assert failed_automated(res) == final, {t["name"]: t["output"] for t in res["tests"] if t["status"] != "passed"}
    judged_carried = sorted(c["id"] for c in extra["checks"] if c.get("judged_on") == "carried_forward")
    assert judged_carried == expect["carried"], extra.get("carried_forward")
    site = extra["captures_site"]
    if expect["captures_site"] is None:
        assert site not in SITE_NAMES, f"expected no usable captures, the grader named {site}"
    else:
        assert site == expect["captures_site"]
    assert extra["gif_frames"] == expect["gif_frames"]
    assert bool(extra["answer"]) == expect["explanation"]
    # the score is derived from the verdicts, never the other way round
    assert res["score"] == sum(c["points"] for c in extra["checks"])
    assert [c["id"] for c in extra["checks"]] == list(CHECK_IDS)


def feedback(res: dict, check: str) -> str:
    return next(t["output"] for t in res["tests"] if t["name"].startswith(check + ":"))


@pytest.mark.parametrize("name, site, phrase", [
    ("wrong_site_mlp", "mlp_out", "equals the MLP output of layer 7 (mlp_out), not the residual stream entering layer 7 (resid_pre)"),
    ("wrong_site_attn", "attn_out", "equals the attention output of layer 7 (attn_out)"),
    ("wrong_site_ln_output", "ln1_out", "equals the output of input_layernorm in layer 7 (ln1_out)"),
    ("wrong_site_resid_mid", "resid_mid", "the residual stream after attention in layer 7 (resid_mid)"),
    ("wrong_site_layer_output", "resid_post", "the residual stream leaving layer 7 (resid_post)"),
])
def test_wrong_sites_are_named_in_the_feedback(batch, name, site, phrase):
    text = feedback(results(batch, name), "p3.captures_match")
    assert phrase in text
    assert "36 of your 36 captured layers" in text
    if site == "resid_post":
        assert "off by one layer" in text
    comparison = json.loads((batch / name / "comparison.json").read_text())
    assert {ls["site"] for ls in comparison["captures"]["layers"]} == {site}


def test_wrong_site_still_earns_part5_by_error_carried_forward(batch):
    res = results(batch, "wrong_site_mlp")
    assert "p5.projection_match" not in failed_automated(res)
    assert "exact PCA of your own captures" in feedback(res, "p5.projection_match")


def test_seed_notebook_execution_record(batch):
    """The assignment's seed: 36 hooks on model.layers.N.mlp, NameError cells, no captures."""
    rec = execution(batch, "seed_notebook")
    mlp_hooks = [h for h in rec["hooks"] if h["origin"] == "student"]
    assert [h["module"] for h in mlp_hooks] == [f"model.layers.{n}.mlp" for n in range(NUM_LAYERS)]
    assert {h["kind"] for h in mlp_hooks} == {"forward"} and all(h["removed"] for h in mlp_hooks)
    assert any(c["ename"] == "NameError" and "layers" in c["evalue"] for c in rec["cells"])
    assert rec["status"] == "cell_errors"
    assert rec["captures"] is None
    assert rec["model"]["class"] == "Qwen3ForCausalLM" and rec["model"]["num_layers"] == NUM_LAYERS
    assert rec["forwards"][0]["n_tokens"] == 404
    text = feedback(results(batch, "seed_notebook"), "p3.hook_site")
    assert "36 x model.layers.N.mlp (forward hook)" in text


def test_correct_solution_extracts_36_captures_and_projections(batch):
    rec = execution(batch, "correct_layer_prehook")
    assert rec["captures"]["keys"] == list(range(NUM_LAYERS)) and rec["captures"]["shape"][-2:] == [404, 64]
    assert rec["projections"]["keys"] == list(range(NUM_LAYERS)) and rec["projections"]["shape"] == [3, 404]
    with np.load(batch / "correct_layer_prehook" / "extracted.npz", allow_pickle=False) as z:
        caps = [k for k in z.files if k.startswith(f"captures.{rec['captures']['variable']}.")]
        assert len(caps) == NUM_LAYERS
    assert rec["status"] == "ok" and rec["tampered"] == [] and rec["project_imports"] == []
    assert {f["name"] for f in rec["files"]} >= {"tokens.gif"}
    assert all(c["seconds"] >= 0 for c in rec["cells"])


def test_generate_step_captures_are_explained(batch):
    text = feedback(results(batch, "generate_overwrites"), "p3.captures_match")
    assert "last step of generate()" in text


def test_keys_one_to_36_and_bf16_are_read_correctly(batch):
    assert "keys 1..36 read as layers 0..35" in feedback(results(batch, "correct_keys_1_to_36"), "p3.captures_match")
    rec = execution(batch, "correct_bf16")
    assert rec["model"]["dtype"] == "bfloat16"
    assert results(batch, "correct_bf16")["extra_data"]["captures_layers_correct"] == NUM_LAYERS


def test_prompt_mistakes_are_charged_to_part4_only(batch):
    for name in ("wrong_prompt", "chat_template_prompt"):
        res = results(batch, name)
        assert failed_automated(res) == ["p4.prompt_exact"]
        assert "first differ" in feedback(res, "p4.prompt_exact")


def test_output_hidden_states_hooks_of_transformers_do_not_count(batch):
    rec = execution(batch, "output_hidden_states")
    assert rec["hooks"] and all(h["origin"] == "transformers" for h in rec["hooks"])
    assert "output_hidden_states instead" in feedback(results(batch, "output_hidden_states"), "p3.hook_site")


def test_submission_forms(batch):
    canvas = results(batch, CANVAS_ID)
    assert canvas["extra_data"]["late"] is True and canvas["extra_data"]["student_id"] == "777"
    assert canvas["extra_data"]["diagrams"] == ["decoder_diagram.png"]
    assert failed_automated(canvas) == []
    assert failed_automated(results(batch, "zipped_student")) == []
    folder = results(batch, "folder_student")
    assert failed_automated(folder) == [] and folder["extra_data"]["diagrams"] == ["my_diagram.jpg"]


def test_manual_checks_score_zero_and_say_so(batch):
    res = results(batch, "correct_layer_prehook")
    manual = [t for t in res["tests"] if "manual" in t["tags"]]
    assert {t["name"].split(":")[0] for t in manual} == MANUAL
    assert all(t["score"] == 0 and "Graded by hand by a TA" in t["output"] for t in manual)
    # Gradescope: a TA check is never "failed", and score / max score add up over the automated checks
    assert all("status" not in t and t["max_score"] == 0 for t in manual)
    assert res["score"] == 85 and sum(t["max_score"] for t in res["tests"]) == 85
    assert sum(c["max_points"] for c in res["extra_data"]["checks"]) == 100  # the rubric's total


def test_gradebook_files(batch):
    import csv

    rows = list(csv.reader((batch / "grades.csv").read_text().splitlines()))
    assert rows[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert rows[1][0] == "Points Possible" and rows[1][5] == "100"
    by_id = {r[1]: r for r in rows[2:]}
    assert by_id["777"][0] == "curiemarie" and by_id["777"][5] == "85"
    assert len(rows) - 2 == len(list(batch.glob("*/results.json")))
    detail = list(csv.DictReader((batch / "grades_detail.csv").read_text().splitlines()))
    seed = next(r for r in detail if r["submission"] == "seed_notebook")
    assert seed["grading_status"] == "cell_errors" and seed["p3.captures_match"] == "0" and seed["p2.diagram"] == "pending"
    assert seed["manual_pending"] == "p2.diagram p5.explanation"
    index = (batch / "index.html").read_text()  # the batch ran with --no-report: rows, no links
    assert all(sid in index for sid in ("seed_notebook", CANVAS_ID, "zipped_student", "folder_student"))
