"""What a TA sees for submissions that have nothing gradable, with the real `grade` on one Canvas download:
the Canvas name gives the identity whatever the file holds; a notebook without code is `empty_notebook`
and its manual evidence still reaches the TA; the manual checks of `no_notebook`/`invalid_notebook`
submissions are 0 with the reason (not pending; a TA can override them), those of a `grader_error`
stay pending until the regrade and say so, in grades_detail.csv, the index, the export, the review
page and `summarize --require-manual`; `feedback --after-due` refuses while items are pending unless
`--allow-pending`; `manual --import` says what it did and rewrites the class outputs with the settings
recorded in DIR/grading.json.

One batch (one notebook runs a kernel; the others never start one) plus one grader_error result
written by the batch's own crash path (pipeline.record_failure). Tests that change the folder work on
a copy of it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from html import unescape
from pathlib import Path

import nbformat
import pytest

from fixtures.notebooks import build

ROOT = Path(__file__).resolve().parents[1]
DIAGRAM = ROOT / "fixtures/submissions/lovelaceada_10001_90002_decoder_diagram.png"
ANSWER = "The tokens spread out over the sphere in early layers and gather into two clusters at the end."
ZIP, FOLDER, PNG_ONLY = "doejane_20002", "leeann_20008", "nguyenvan_20016"  # no_notebook
INVALID = "smithal_20006"  # invalid_notebook
EMPTY, MARKDOWN = "roekim_20004", "parkmin_20010"  # empty_notebook
CORRECT = "okafor_20012"  # ok, LATE
CRASHED = "garcia_20014"  # grader_error
MANUAL = ("p2.diagram", "p5.explanation")


def _main(*args: str) -> int:
    from grader.cli import main

    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    from grader.intake.submission import Submission
    from grader.pipeline import record_failure
    from grader.settings import Settings

    root = tmp_path_factory.mktemp("ta-rules")
    src, out = root / "canvas", root / "grading"
    src.mkdir()
    (src / "doejane_20002_30003_submission.zip").write_bytes(b"PK\x03\x04 this zip was cut off in the upload")
    (src / "leeann_LATE_20008_30009_files").mkdir()
    (src / "leeann_LATE_20008_30009_files" / "notes.txt").write_text("I could not get Colab to run.")
    shutil.copyfile(DIAGRAM, src / "nguyenvan_20016_30017_decoder_diagram.png")
    (src / "smithal_20006_30007_hw.ipynb").write_text("this is { not json")
    nbformat.write(nbformat.v4.new_notebook(), str(src / "roekim_20004_30005_hw.ipynb"))  # 0 cells
    markdown_only = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Part 5"),
                                                    nbformat.v4.new_markdown_cell(ANSWER),
                                                    nbformat.v4.new_code_cell("   \n")])
    nbformat.write(markdown_only, str(src / "parkmin_20010_30011_hw.ipynb"))
    shutil.copyfile(DIAGRAM, src / "parkmin_20010_30012_decoder_diagram.png")
    nbformat.write(build("correct_layer_prehook"), str(src / "okafor_LATE_20012_30013_hw.ipynb"))
    assert _main(src, "--out", out, "--workers", "2", "--no-report") == 0
    sub = Submission(id=CRASHED, source=str(src / "garcia_20014_30015_hw.ipynb"), student_name="garcia",
                     student_id="20014")
    record_failure(sub, out / CRASHED, "the grader's worker failed (exit -9): killed", 1.0, Settings(report=False))
    assert _main("summarize", out) == 0
    return out


@pytest.fixture
def out(graded, tmp_path) -> Path:
    """A copy of the graded folder for a test that records points or writes files."""
    return Path(shutil.copytree(graded, tmp_path / "grading"))


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _detail(out: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in _rows(out / "grades_detail.csv")}


def _canvas(out: Path) -> tuple[list[str], dict[str, list[str]]]:
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    return rows[0], {r[1]: r for r in rows[2:]}


def _text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _pending(detail: dict[str, dict]) -> tuple[int, int]:
    """(items, submissions) pending, as grades_detail.csv states them."""
    items = [r["manual_pending"].split() for r in detail.values()]
    return sum(map(len, items)), sum(bool(i) for i in items)


# ---- item 4: the Canvas name carries the identity --------------------------------------------------------

def test_the_canvas_name_gives_the_student_whatever_the_file_holds(graded):
    _, canvas = _canvas(graded)
    detail = _detail(graded)
    for sid, student, status in ((ZIP, "doejane", "no_notebook"), (FOLDER, "leeann", "no_notebook"),
                                 (PNG_ONLY, "nguyenvan", "no_notebook"), (INVALID, "smithal", "invalid_notebook")):
        uid = sid.rsplit("_", 1)[1]
        assert canvas[uid][0] == student, (sid, canvas[uid])  # Student, ID: Canvas matches the row
        assert detail[sid]["grading_status"] == status and detail[sid]["student_id"] == uid
    assert all("_" not in uid for uid in canvas), sorted(canvas)  # no "doejane_20002" where an ID belongs
    assert detail[FOLDER]["late"] == "True"  # the late flag from the folder's Canvas name
    assert "submission.zip" in detail[ZIP]["reason"]


# ---- item 5: a notebook without code -----------------------------------------------------------------------

def test_a_notebook_without_code_says_nothing_ran_and_keeps_its_manual_evidence(graded):
    from grader.manual.review import create_app
    from grader.status import Status, describe

    assert describe("empty_notebook") == ("Nothing ran: the notebook has no code", "bad", "no code")
    assert Status.EMPTY_NOTEBOOK.judgeable  # judged, so the markdown answer and the diagram are found
    empty = json.loads((graded / EMPTY / "results.json").read_text())["extra_data"]
    markdown = json.loads((graded / MARKDOWN / "results.json").read_text())["extra_data"]
    assert empty["status"] == markdown["status"] == "empty_notebook"
    assert "has no cells" in empty["reason"] and "2 markdown, 1 empty code" in markdown["reason"]
    assert ANSWER in markdown["answer"] and markdown["diagrams"]
    detail = _detail(graded)
    assert detail[EMPTY]["manual_pending"] == detail[MARKDOWN]["manual_pending"] == " ".join(MANUAL)  # a TA grades them
    row = (graded / "index.html").read_text().split(f'data-id="{MARKDOWN}"')[1].split("</tr>")[0]
    assert '<span class="badge bad">no code</span>' in row  # not the green "ran" chip
    client = create_app(graded, "ta").test_client()
    page = client.get(f"/s/{MARKDOWN}").get_data(as_text=True)
    assert ANSWER in page and f'<img src="/s/{MARKDOWN}/file/' in page


# ---- item 6: the manual checks of submissions with nothing gradable ----------------------------------------

def test_nothing_gradable_is_0_with_the_reason_and_a_grader_error_stays_pending(graded):
    detail = _detail(graded)
    for sid, why in ((ZIP, "no notebook was submitted"), (FOLDER, "no notebook was submitted"),
                     (INVALID, "not a readable notebook")):
        r = detail[sid]
        assert [r[c] for c in MANUAL] == ["0", "0"] and r["manual_pending"] == "", r
        assert why in r["manual_note"] and r["manual_score"] == "0"
    crashed = detail[CRASHED]
    assert crashed["grading_status"] == "grader_error" and [crashed[c] for c in MANUAL] == ["pending", "pending"]
    assert crashed["manual_pending"] == " ".join(MANUAL) and "until this submission is regraded" in crashed["manual_note"]
    assert detail[CORRECT]["manual_pending"] == " ".join(MANUAL) and detail[CORRECT]["manual_note"] == ""
    items, _ = _pending(detail)
    index = (graded / "index.html").read_text()
    assert f"{items} manual item(s) not graded yet" in _text(index)
    assert "(auto)" in index.split(f'data-id="{ZIP}"')[1].split("</tr>")[0]
    assert "(regrade)" in index.split(f'data-id="{CRASHED}"')[1].split("</tr>")[0]


def test_summarize_require_manual_counts_only_what_a_ta_or_a_regrade_must_do(out, capsys):
    from grader.manual.store import ManualStore

    items, subs = _pending(_detail(out))
    assert _main("summarize", out, "--require-manual") == 1
    err = capsys.readouterr().err
    assert f"{items} manual item(s) are pending; 2 of them wait for a regrade of the 1 submission(s) the grader " \
           f"failed on (grader_error: {CRASHED})" in err
    assert _main("summarize", out) == 0  # without --require-manual: written, with the warning
    err = capsys.readouterr().err
    assert f"{items} manual item(s) of {subs} submission(s) are not graded yet" in err and "wait for a regrade" in err
    store = ManualStore(out)
    for sid in (CORRECT, EMPTY, MARKDOWN):  # every item a TA can grade; none of the auto-zeroed ones
        for check in MANUAL:
            store.set(sid, check, 1, "", "ta")
    assert _main("summarize", out, "--require-manual") == 1  # the grader_error is still pending
    assert "wait for a regrade" in capsys.readouterr().err
    store.set(CRASHED, "p2.diagram", 0, "", "ta")
    store.set(CRASHED, "p5.explanation", 0, "", "ta")
    assert _main("summarize", out, "--require-manual") == 0
    assert (out / "grades.csv").is_file()


def test_a_ta_can_override_the_automatic_0_and_it_is_never_overwritten(out, capsys):
    from grader.manual.store import ManualStore

    ManualStore(out).set(INVALID, "p2.diagram", 3, "diagram sent by email", "ta-ana")
    before = (out / "manual.json").read_bytes()
    assert _main("summarize", out) == 0
    r = _detail(out)[INVALID]
    assert (r["p2.diagram"], r["p5.explanation"], r["manual_score"]) == ("3", "0", "3")
    assert r["manual_note"].startswith("p5.explanation: 0 without a TA's grading")
    results = json.loads((out / INVALID / "results.json").read_text())
    assert float(_canvas(out)[1]["20006"][5]) == results["score"] + 3
    assert (out / "manual.json").read_bytes() == before  # the rule never writes the TA's file


def test_export_leaves_out_the_automatic_0_and_says_why(out, tmp_path, capsys):
    sheet = tmp_path / "manual.csv"
    assert _main("manual", out, "--export", sheet) == 0
    said = capsys.readouterr().out
    detail = _detail(out)
    automatic = [sid for sid, r in detail.items() if r["grading_status"] in ("no_notebook", "invalid_notebook")]
    rows = _rows(sheet)
    assert {r["id"] for r in rows} == set(detail) - set(automatic)
    assert f"left out: {2 * len(automatic)} manual items of {len(automatic)} submissions where nothing gradable" in said
    assert "they are 0 without a TA" in said and "to override one, add its row" in said
    assert "2 rows of 1 submission the grader failed on (grader_error) stay pending" in said
    # a TA who overrides one by adding its row: imported like any other
    sheet.write_text(sheet.read_text() + f"{ZIP},doejane,p2.diagram,10,4,found it on Canvas\n")
    assert _main("manual", out, "--import", sheet, "--grader", "ta-ana") == 0
    assert _detail(out)[ZIP]["p2.diagram"] == "4"


def test_the_review_page_shows_the_rule(graded):
    from grader.manual.review import create_app

    client = create_app(graded, "ta").test_client()
    listing = _text(client.get("/").get_data(as_text=True))
    assert "done: 2 at 0 automatically" in listing and "2 wait for a regrade" in listing
    assert "4 with nothing gradable submitted" in listing and "1 waiting for a regrade" in listing
    zero = _text(client.get(f"/s/{ZIP}").get_data(as_text=True))
    assert "0 without a TA's grading: no notebook was submitted (no_notebook); enter points to override" in zero
    assert "not graded yet" not in zero
    crashed = _text(client.get(f"/s/{CRASHED}").get_data(as_text=True))
    assert "pending until this submission is regraded" in crashed
    first = client.get(f"/s/{ZIP}").get_data(as_text=True)  # "next to grade" skips the automatic and held ones
    target = re.search(r'id="nav-next-pending" href="/s/([^"]+)"', first).group(1)
    assert target in (CORRECT, EMPTY, MARKDOWN)


# ---- item 7: releasing feedback, importing points -----------------------------------------------------------

def test_feedback_after_due_is_refused_while_items_are_pending(out, tmp_path, capsys):
    from grader.manual.store import ManualStore

    items, subs = _pending(_detail(out))
    target = tmp_path / "feedback"
    assert _main("feedback", out, "--out", target, "--after-due") == 2
    err = capsys.readouterr().err
    assert f"{items} manual item(s) of {subs} student(s) are not graded yet" in err
    assert f"grade review {out}" in err and "--allow-pending" in err and "so no feedback was released" in err
    assert not target.exists()  # nothing released
    assert _main("feedback", out, "--out", tmp_path / "before", ) == 0  # before the due date: not refused
    assert _main("feedback", out, "--out", target, "--after-due", "--allow-pending") == 0
    assert f"{items} manual item(s) of {subs} student(s) show as not graded yet" in capsys.readouterr().out
    page = _text((target / CORRECT / "feedback.html").read_text())
    assert "Graded by your TA: not graded yet." in page
    zero = _text((target / ZIP / "feedback.html").read_text())
    assert "0 without a TA's grading: no notebook was submitted" in zero and "not graded yet" not in zero
    assert "until this submission is regraded" in _text((target / CRASHED / "feedback.html").read_text())
    store = ManualStore(out)
    for sid in (CORRECT, EMPTY, MARKDOWN, CRASHED):
        for check in MANUAL:
            store.set(sid, check, 2 if check == "p2.diagram" else 1, "", "ta")
    assert _main("feedback", out, "--out", tmp_path / "released", "--after-due") == 0


def test_import_says_what_it_did_and_rewrites_the_class_outputs(out, tmp_path, capsys):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("[late]\npenalty = 0.5\n")
    column = "Residual stream (123456)"
    (out / "grading.json").write_text(json.dumps({"grader_version": "0.1.0", "canvas_assignment": column,
                                                  "rubric": str(rubric.resolve()), "settings": {"workers": 2}}))
    sheet = tmp_path / "manual.csv"
    assert _main("manual", out, "--export", sheet) == 0
    rows = _rows(sheet)
    for r in rows:
        if r["id"] in (CORRECT, EMPTY):
            r["points"] = "4" if r["check"] == "p2.diagram" else "2"
    with sheet.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    capsys.readouterr()
    assert _main("manual", out, "--import", sheet, "--grader", "ta-ana") == 0
    said = capsys.readouterr()
    blank = len(rows) - 4
    assert f"imported 4 manual points for 2 submissions (0 changed, 4 new); 0 rows unchanged, {blank} with blank " \
           "points skipped" in said.out
    assert f"rewrote {out / 'grades.csv'}" in said.out and f"the settings recorded in {out / 'grading.json'}" in said.out
    assert "not graded yet" in said.err  # the items still pending are said, as summarize says them
    header, canvas = _canvas(out)
    assert header[-1] == column  # the recorded column, not the default
    auto = json.loads((out / CORRECT / "results.json").read_text())["score"]
    assert float(canvas["20012"][5]) == pytest.approx(0.5 * (auto + 6))  # LATE: the recorded rubric's penalty
    assert _detail(out)[EMPTY]["manual_score"] == "6"

    next(r for r in rows if r["id"] == CORRECT and r["check"] == "p2.diagram")["points"] = "3"
    with sheet.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "grading.json").unlink()
    assert _main("manual", out, "--import", sheet) == 0
    said = capsys.readouterr().out
    assert "imported 1 manual point for 1 submission (1 changed, 0 new); 3 rows unchanged" in said
    assert "grading.json not found" in said and "the default assignment column and rubric" in said
    header, canvas = _canvas(out)
    assert header[-1] != column and float(canvas["20012"][5]) == auto + 5  # defaults: no late penalty

    (out / "grading.json").write_text("{not json")
    assert _main("manual", out, "--import", sheet) == 0
    assert "grading.json could not be read" in capsys.readouterr().out
