"""Released feedback: pages and zips per student, at the rubric's visibility, with the TA's comments and
nothing of the reference. Two fixture notebooks are graded for real (`grade ... --workers 2`)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import nbformat
import pytest

TA_COMMENT = "Good diagram; the second skip connection should add the MLP output to the residual."
HINT = "read it with a forward pre-hook on model.model.layers[i]"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    from fixtures.notebooks import build
    from grader.cli import main

    src = tmp_path_factory.mktemp("feedback-src")
    for name in ("correct_layer_prehook", "wrong_site_mlp"):
        nbformat.write(build(name), str(src / f"{name}.ipynb"))
    out = tmp_path_factory.mktemp("feedback-graded") / "grading"
    assert main([str(src), "--out", str(out), "--workers", "2", "--no-report"]) == 0
    return out


@pytest.fixture(scope="module")
def manual_store_exists() -> bool:
    try:
        import grader.manual.store  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def pages(graded, tmp_path_factory, manual_store_exists) -> dict[str, dict[str, str]]:
    """{"before"|"after": {submission id: page html}}, with one TA grade recorded if the TA store exists."""
    from grader.run.feedback import write_feedback

    if manual_store_exists:
        from grader.manual.store import ManualStore

        ManualStore(graded).set("wrong_site_mlp", "p2.diagram", 7, TA_COMMENT, grader="ta-ana")
    out = {}
    for when, after_due in (("before", False), ("after", True)):
        target = tmp_path_factory.mktemp(f"feedback-{when}")
        written = write_feedback(graded, target, after_due=after_due)
        assert sorted(p.parent.name for p in written) == ["correct_layer_prehook", "wrong_site_mlp"]
        for page in written:
            assert page.name == "feedback.html" and page.is_file()
            with zipfile.ZipFile(target / f"{page.parent.name}.zip") as zf:
                assert sorted(zf.namelist()) == ["feedback.html", "tokens.gif"]
                assert zf.read("feedback.html").decode() == page.read_text()
                assert zf.read("tokens.gif")[:6] in (b"GIF87a", b"GIF89a")
        out[when] = {p.parent.name: p.read_text() for p in written}
    return out


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_pages_are_self_contained_and_show_the_students_own_work(pages):
    for html in pages["after"].values():
        assert "<script" not in html and 'src="http' not in html and "default-src 'none'" in html
        assert html.count("data:image/png;base64,") == 1  # the student's spheres, one figure
        assert "data:image/gif;base64," in html  # the student's GIF
        assert "at layers 0, 18, 35, each token scaled to unit length" in _text(html)  # the spheres' caption


def test_pages_show_nothing_of_the_reference(pages, graded):
    golden_caption = "reference, layer"  # the TA report's sphere captions
    for when in pages:
        for sid, html in pages[when].items():
            text = _text(html)
            assert golden_caption not in text and "mean pairwise cosine" not in text.lower()
            assert "What the reference shows" not in text and "mean angle moved" not in text
            assert "Student vs reference" not in text and "reference PCA (resid_pre)" not in text
    # the TA report of the same submission has them (what the page must leave out)
    assert "mean pairwise cosine" in (Path(__file__).resolve().parents[1] / "grader/report/templates/submission.html"
                                      ).read_text()


def test_ta_points_and_comment_are_shown(pages, manual_store_exists):
    wrong = _text(pages["after"]["wrong_site_mlp"])
    correct = _text(pages["after"]["correct_layer_prehook"])
    if manual_store_exists:
        assert TA_COMMENT in wrong and "7 / 10" in wrong
        assert "p2.diagram" in correct and "not graded yet" in correct
    else:
        assert "Graded by your TA" in wrong
    assert "p5.explanation" in wrong and "not graded yet" in wrong


def test_visibility_brief_before_the_due_date_full_after(pages, graded):
    before, after = _text(pages["before"]["wrong_site_mlp"]), _text(pages["after"]["wrong_site_mlp"])
    # what is wrong is said both times
    for text in (before, after):
        assert "None of them can read the input of layers 0-35" in text
        assert "equals the MLP output of layer 7 (mlp_out), not the residual stream entering layer 7 (resid_pre)" in text
    assert HINT not in before and "How to fix it is not shown before the due date" in before
    assert HINT in after and "How to fix it is not shown" not in after
    # results.json keeps the full text for instructors and Gradescope, and the hint apart
    results = json.loads((graded / "wrong_site_mlp" / "results.json").read_text())
    test = next(t for t in results["tests"] if t["name"].startswith("p3.hook_site"))
    assert HINT in test["output"] and "\ue000" not in test["output"]
    summary = next(c for c in results["extra_data"]["checks"] if c["id"] == "p3.hook_site")
    assert HINT in summary["hint"]


def test_check_result_text_and_old_results_json():
    from grader.results import CheckResult

    old = CheckResult.from_json({"id": "p3.hook_site", "title": "t", "status": "failed", "points": 0, "max_points": 10},
                                {"name": "p3.hook_site: t", "output": "Wrong. Do this."})
    assert old.hint == "" and old.text("brief") == old.text("full") == "Wrong. Do this."
    c = CheckResult(id="p3.captures_match", title="t", max_points=15, points=0, status="failed",
                    feedback="Your layer 7 capture equals X, so this is off by one layer: hook the input instead.",
                    hint="hook the input instead.")
    assert c.text("full") == c.feedback
    assert c.text("brief") == "Your layer 7 capture equals X, so this is off by one layer."
    back = CheckResult.from_json(c.to_summary(), c.to_test())
    assert back.hint == c.hint and back.text("brief") == c.text("brief")


def test_rubric_visibility_keys_and_their_errors(tmp_path):
    from grader.judge.rubric.config import RubricError, load_rubric, visibility

    rubric = load_rubric()
    assert visibility(rubric, "p3.hook_site", "self_check") == "brief"
    assert visibility(rubric, "p3.hook_site", "released") == "full"
    assert visibility(rubric, "p1.model_loaded", "self_check") == "full"
    assert visibility({}, "p5.projection_match", "self_check") == "brief"  # defaults without the file's keys
    path = tmp_path / "r.toml"
    path.write_text('[checks."p3.hook_site"]\nself_check = "some"\n')
    with pytest.raises(RubricError, match=r'self_check of p3.hook_site .* must be "full" .* or "brief"'):
        load_rubric(path)
    path.write_text('[checks."p3.hook_site"]\nreleasd = "full"\n')
    with pytest.raises(RubricError, match="may set only 'points' and 'enabled' .* 'self_check' and 'released'"):
        load_rubric(path)
    path.write_text('[checks."p3.hook_site"]\npoints = 12\nreleased = "brief"\n')
    entry = load_rubric(path)["p3.hook_site"]  # the file's keys over the pack's; what it leaves out stays the pack's
    assert (entry["points"], entry["released"], entry["self_check"]) == (12, "brief", "brief")
