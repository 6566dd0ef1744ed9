"""End to end: `grade` on notebooks saved the way Google Colab saves them (fixtures/notebooks/colab.py),
in real kernels on the miniature, against the verdicts a fair instructor gives each one.

Real submissions are Colab notebooks written for a GPU runtime (`.to("cuda")`, `device_map="cuda"`,
autocast, `google.colab`, `!pip`, magics) and saved with the outputs of the student's own run on
the real Qwen3-4B. The grader must run them unchanged on its CPU (grader/execute/colab_env.py records
every adaptation in execution.json["environment"]), find captures however they are keyed or kept,
judge a changed prompt by its first differing token, not offer the Colab badge as the diagram, and
leave the submitted file (with its stored outputs) untouched.

Colab also gives students libraries they never install (scipy, pandas, seaborn, einops, plotly), a TPU
runtime (torch_xla), flash attention and AutoModel's base model (fixtures/notebooks/colab_idioms.py): a
correct notebook using any of them gets the plain solution's score, and what was adapted is recorded.

One batch (session fixture) grades every Colab notebook once with `grade ... --workers 2 --no-report`.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import nbformat
import pytest

from fixtures.notebooks.cells import COLAB_BADGE
from fixtures.notebooks.colab import _OPTIONS, COLAB, IDIOMS, NAMES, POINTS, build_colab, write_colab
from fixtures.notebooks.colab_outputs import PRINTED_BASE_MODEL, PRINTED_MODEL
from grader.judge.evidence import printed_model
from grader.report.submission import describe_environment
from grader.judge.rubric.config import CHECK_IDS, load_rubric
from grader.spec.sites import SITE_NAMES

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STORED_ONLY = ("Embedding(151936, 2560)", "torch.Size([1, 404, 2560])", "Tesla T4")  # only Colab's run printed these


@pytest.fixture(scope="session")
def colab_batch(tmp_path_factory) -> SimpleNamespace:
    """Every Colab notebook written to one folder and graded once; the bytes written are kept."""
    from grader.cli import main

    src = tmp_path_factory.mktemp("colab")
    write_colab(src)
    written = {p.name: p.read_bytes() for p in sorted(src.iterdir())}
    out = tmp_path_factory.mktemp("colab-graded") / "grading"
    rc = main([str(src), "--out", str(out), "--workers", "2", "--no-report"])
    return SimpleNamespace(src=src, out=out, rc=rc, written=written)


def results(batch, name: str) -> dict:
    return json.loads((batch.out / name / "results.json").read_text())


def execution(batch, name: str) -> dict:
    return json.loads((batch.out / name / "execution.json").read_text())


def failed_automated(res: dict) -> list[str]:
    return sorted(c["id"] for c in res["extra_data"]["checks"] if not c["manual"] and c["status"] != "passed")


def feedback(res: dict, check: str) -> str:
    return next(t["output"] for t in res["tests"] if t["name"].startswith(check + ":"))


def failures(res: dict) -> dict:
    return {t["name"]: t["output"] for t in res["tests"] if t["status"] != "passed" and "manual" not in t["tags"]}


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        else:
            parts += [v if isinstance(v, str) else json.dumps(v) for v in out.get("data", {}).values()]
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# The fixtures themselves (no grading)


def test_colab_catalog_shape():
    assert len(COLAB) >= 16 and all(re.fullmatch(r"colab_[a-z0-9_]+", n) for n in NAMES)
    assert len(IDIOMS) == 7 and set(IDIOMS) < set(NAMES)
    rubric = load_rubric()
    assert POINTS == {cid: rubric[cid]["points"] for cid in POINTS}
    assert set(POINTS) | {"p2.diagram", "p5.explanation"} == set(CHECK_IDS)
    for name, spec in COLAB.items():
        e = spec.expect
        assert e["score"] == sum(POINTS.values()) - sum(POINTS[f] for f in e["fails"]), name
        assert set(e["feedback_contains"]) <= set(CHECK_IDS), name


def test_colab_notebooks_build_deterministically_as_colab_saves_them(tmp_path):
    seen_ids = set()
    for name in NAMES:
        text = nbformat.writes(build_colab(name))
        assert text == nbformat.writes(build_colab(name)), f"{name}: two builds differ"
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        assert (nb.nbformat, nb.nbformat_minor) == (4, 0)
        meta = nb.metadata
        assert meta["colab"]["provenance"] == [] and meta["colab"]["gpuType"]
        assert meta["accelerator"] == _OPTIONS[name]["accelerator"] in ("GPU", "TPU")
        assert meta["kernelspec"] == {"name": "python3", "display_name": "Python 3"}
        assert meta["language_info"] == {"name": "python"}
        state = meta["widgets"][WIDGET_STATE]
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source == COLAB_BADGE
        ids = [c.metadata["id"] for c in nb.cells]
        assert all(re.fullmatch(r"[A-Za-z0-9]{12}", i) for i in ids) and len(set(ids)) == len(ids)
        assert not seen_ids & set(ids), f"{name}: cell ids repeat another notebook's"
        seen_ids |= set(ids)
        code = [c for c in nb.cells if c.cell_type == "code"]
        counts = [c.execution_count for c in code]
        assert counts[-1] is None and not code[-1].outputs  # Colab's trailing empty cell
        ran = [n for n in counts if n is not None]
        assert ran != sorted(ran) and len(set(ran)) == len(ran), f"{name}: counts {counts}"
        for c in code:
            if c.outputs:
                assert c.metadata["colab"] == {"base_uri": "https://localhost:8080/"} and c.metadata["outputId"]
        views = [o.data[WIDGET_VIEW]["model_id"] for c in code for o in c.outputs if WIDGET_VIEW in o.get("data", {})]
        assert views and all(v in state for v in views), name
        text_out = "".join(_outputs_text(c) for c in code)
        assert "Embedding(151936, 2560)" in text_out and "(input_layernorm): Qwen3RMSNorm((2560,)" in text_out
        assert f"torch.Size([1, {COLAB[name].expect['n_tokens']}, 2560])" in text_out or "colab_stacked" in name
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs), name
    assert "The secret `HF_TOKEN` does not exist in your Colab secrets." in "".join(
        _outputs_text(c) for c in build_colab("colab_cuda_to").cells if c.cell_type == "code")
    paths = write_colab(tmp_path, ["colab_magics"])
    assert paths == [tmp_path / "colab_magics.ipynb"]
    assert nbformat.read(str(paths[0]), as_version=4) == build_colab("colab_magics")


# --------------------------------------------------------------------------------------------------
# Graded end to end


def test_grade_ran_without_grader_errors(colab_batch):
    assert colab_batch.rc == 0
    assert sorted(p.parent.name for p in colab_batch.out.glob("*/results.json")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_verdicts(colab_batch, name):
    expect = COLAB[name].expect
    res = results(colab_batch, name)
    extra = res["extra_data"]
    assert extra["status"] == expect["status"], extra["reason"]
    assert failed_automated(res) == expect["fails"], failures(res)
    assert res["score"] == expect["score"], failures(res)
    site = extra["captures_site"]
    if expect["captures_site"] is None:
        assert site not in SITE_NAMES
    else:
        assert site == expect["captures_site"], failures(res)
    assert extra["gif_frames"] == expect["gif_frames"]
    assert bool(extra["answer"]) == expect["explanation"]
    assert expect["n_tokens"] in extra["prompt_tokens"]
    if expect["captures_site"] is not None:  # the captures judged are those of the run on the student's prompt
        caps = json.loads((colab_batch.out / name / "comparison.json").read_text())["captures"]
        assert caps["n_tokens"] == expect["n_tokens"], {k: v for k, v in caps.items() if k != "layers"}
    assert res["score"] == sum(c["points"] for c in extra["checks"])


FEEDBACK = [(name, check, phrase) for name, spec in COLAB.items()
            for check, phrases in spec.expect["feedback_contains"].items() for phrase in phrases]


@pytest.mark.parametrize("name, check, phrase", FEEDBACK)
def test_feedback_names_what_happened(colab_batch, name, check, phrase):
    text = feedback(results(colab_batch, name), check)
    assert phrase in text, text


def test_changed_word_is_named_with_both_tokens_decoded(colab_batch):
    """' dismant' (the assignment's token 10) against ' demolished' (the student's), quoted as tokens."""
    text = feedback(results(colab_batch, "colab_one_word_changed"), "p4.prompt_exact")
    assert re.search(r"position 10\b", text), text
    assert re.search(r"""['"] dismant['"]""", text) and re.search(r"""['"] demolished['"]""", text), text


@pytest.mark.parametrize("name", NAMES)
def test_badges_are_not_diagrams(colab_batch, name):
    diagrams = results(colab_batch, name)["extra_data"]["diagrams"]
    assert not [d for d in diagrams if "colab-badge" in d or "shields.io" in d], diagrams
    assert len(diagrams) == COLAB[name].expect["diagrams"], diagrams
    if name == "colab_badge_only_diagram":
        assert diagrams == []


@pytest.mark.parametrize("name", NAMES)
def test_environment_adaptations_are_recorded(colab_batch, name):
    """Every adaptation the notebook needed is in execution.json; CPU-only code is not adapted at all."""
    rec = execution(colab_batch, name)
    assert "environment" in rec, f"execution.json has no 'environment' record (keys: {sorted(rec)})"
    counts = rec["environment"].get("counts", {})
    missing = [k for k in COLAB[name].expect["environment"] if not counts.get(k)]
    assert not missing, f"not recorded: {missing}; recorded: {counts}"
    if not any("cuda" in src for kind, src in COLAB[name].cells if kind == "code"):
        assert not [k for k in counts if k.startswith(("device.", "cuda."))], counts


@pytest.mark.parametrize("name", NAMES)
def test_submitted_notebook_keeps_its_colab_outputs(colab_batch, name):
    """The graded executed.ipynb holds the grader's own run; the submission on disk is not touched."""
    path = colab_batch.src / f"{name}.ipynb"
    assert path.read_bytes() == colab_batch.written[path.name]
    submitted = nbformat.read(str(path), as_version=4)
    assert submitted == build_colab(name)
    executed = nbformat.read(str(colab_batch.out / name / "executed.ipynb"), as_version=4)
    sources = [c.source for c in executed.cells]
    assert sources == [c.source for c in submitted.cells]
    stale = [s for c in executed.cells if c.cell_type == "code" for s in STORED_ONLY if s in _outputs_text(c)]
    assert not stale, f"executed.ipynb still shows the Colab run's outputs: {stale}"
    views = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {}) and o["data"][WIDGET_VIEW]["model_id"]
             in submitted.metadata["widgets"][WIDGET_STATE]]
    assert not views, "executed.ipynb kept the Colab run's download widgets"
    kept = colab_batch.out / name / "submitted" / "notebook.ipynb"
    if kept.exists():  # the grader's copy of what the student saw on Colab
        assert nbformat.read(str(kept), as_version=4) == submitted


# --------------------------------------------------------------------------------------------------
# Colab's libraries, the TPU runtime, flash attention, AutoModel (colab_idioms.py)

IDIOM_REPORT_WORDS = {"attn.flash": "flash attention ran as PyTorch's SDPA attention",
                      "xla.device": "torch_xla (TPU) used", "device.map": "device_map at load mapped to the CPU",
                      "shell.pip": "pip installs answered offline"}


@pytest.mark.parametrize("name", IDIOMS)
def test_idioms_score_as_the_plain_solution_and_their_adaptations_are_reported(colab_batch, name):
    """Same score as the plain Colab solution (colab_magics: CPU code, nothing adapted) and every
    automated check passed; what the grader adapted is in execution.json and in the report's words."""
    plain, res = results(colab_batch, "colab_magics"), results(colab_batch, name)
    assert failed_automated(plain) == [] and plain["score"] == sum(POINTS.values())
    assert failed_automated(res) == [] and res["score"] == plain["score"], failures(res)
    assert res["extra_data"]["status"] == "ok", res["extra_data"]["reason"]
    adaptations = execution(colab_batch, name)["environment"]["adaptations"]
    assert execution(colab_batch, name)["environment"]["errors"] == []
    text = describe_environment(adaptations)
    for kind in COLAB[name].expect["environment"]:
        if kind in IDIOM_REPORT_WORDS:
            assert IDIOM_REPORT_WORDS[kind] in text, text


def test_tpu_notebook_runs_on_the_cpu_through_the_torch_xla_stand_in(colab_batch):
    rec = execution(colab_batch, "colab_tpu_xla")
    details = [a["detail"] for a in rec["environment"]["adaptations"]]
    assert any(d.startswith("xm.xla_device() -> the CPU") for d in details), details
    assert any(d.startswith("xm.mark_step() did nothing") for d in details), details
    assert any("import torch_xla.core.xla_model" in d for d in details), details
    assert rec["model"]["device"] == "cpu" and rec["model"]["dtype"] == "bfloat16"
    executed = nbformat.read(str(colab_batch.out / "colab_tpu_xla" / "executed.ipynb"), as_version=4)
    first = next(c for c in executed.cells if c.cell_type == "code" and "xla_device()" in c.source)
    assert _outputs_text(first).startswith("cpu\nworld size: 1 ordinal: 0"), _outputs_text(first)


def test_flash_attention_runs_as_sdpa_and_the_pip_line_says_why(colab_batch):
    rec = execution(colab_batch, "colab_flash_attention_2")
    flash = [a["detail"] for a in rec["environment"]["adaptations"] if a["kind"] == "attn.flash"]
    assert len(flash) == 1 and flash[0].startswith("attn_implementation='flash_attention_2' ran as 'sdpa'"), flash
    assert rec["model"]["dtype"] == "bfloat16"
    caps = json.loads((colab_batch.out / "colab_flash_attention_2" / "comparison.json").read_text())["captures"]
    assert caps["dtype"] == "bfloat16"  # judged against the bfloat16 golden (SDPA), as a plain bf16 load
    executed = nbformat.read(str(colab_batch.out / "colab_flash_attention_2" / "executed.ipynb"), as_version=4)
    pip = next(c for c in executed.cells if c.cell_type == "code" and "flash-attn" in c.source)
    assert "flash-attn: skipped, not needed on the grader" in _outputs_text(pip), _outputs_text(pip)


def test_automodel_base_model_is_the_assignments_model(colab_batch):
    """AutoModel's Qwen3Model: p1 passes and says so, hooks on model.layers[i] are read as the layers."""
    res = results(colab_batch, "colab_automodel_base")
    assert execution(colab_batch, "colab_automodel_base")["model"]["class"] == "Qwen3Model"
    assert "Qwen3Model (the base model without the LM head" in feedback(res, "p1.model_loaded")
    assert res["extra_data"]["hook_sites"] == {"model.layers.N (forward pre-hook)": 36}
    hooks = execution(colab_batch, "colab_automodel_base")["hooks"]
    assert sorted(h["module"] for h in hooks) == sorted(f"layers.{i}" for i in range(36))


def test_printed_base_model_is_found_where_it_starts():
    """print(model) of a Qwen3Model after other output: the printed model starts at 'Qwen3Model('."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('layers:', 36)\nprint(model)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="layers: 36\n" + PRINTED_BASE_MODEL)])])
    assert printed_model(nb).startswith("Qwen3Model(\n  (embed_tokens)")
    causal = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(model)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="note\n" + PRINTED_MODEL)])])
    assert printed_model(causal).startswith("Qwen3ForCausalLM(\n  (model): Qwen3Model(")
