"""The HTML reports, on real graded output: report.html per submission and the class index.html.

One session fixture grades four submissions with the real `grade` command (about a minute):
a correct fixture notebook enriched with untrusted text (a markdown answer behind a typed
"**Answer:**" label with a <script> in it, HTML in an exception message and in printed output, a
diagram written to disk and one embedded in markdown, an output that gets truncated), the
wrong-site fixture notebook, a notebook whose errors pass through the grader's wrappers (a hook
raising inside model(...), a CUDA matmul through the Colab shim, from_pretrained and generate
failing; its answer starts with "Answer:"), and a file that is not a notebook (judged without
comparison.json). The browser tests render pages in headless Chromium and save screenshots under
test-artifacts/; without Chromium they fail unless QGRADER_SKIP_BROWSER=1.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from grader.report.index import write_index
from grader.report.render import strip_ansi
from grader.report.submission import render_submission

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
RICH = "doejane_12345"  # the id `grade` derives from the Canvas-style file name below
RICH_FILE = "doejane_LATE_12345_67890_answers.ipynb"
SCRIPT_ANSWER = "<script>alert(1)</script>"
HOOK_ERROR = "hook_error"  # errors raised through the recorder's and the Colab shim's wrappers
NETWORK_LOAD = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                          re.IGNORECASE)


# --- the graded submissions ---------------------------------------------------------------------


def _png(color: tuple[int, int, int], size=(40, 20)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def rich_notebook() -> nbformat.NotebookNode:
    """The fixture's correct layer-pre-hook notebook, plus everything a report must show safely."""
    from fixtures.notebooks import build

    nb = build("correct_layer_prehook")
    sketch = nbformat.v4.new_markdown_cell(
        'My sketch: ![sketch](attachment:sketch.png) and <img src="https://example.com/d.png">')
    sketch.attachments = {"sketch.png": {"image/png": base64.b64encode(_png((200, 30, 30))).decode()}}
    nb.cells.insert(7, sketch)
    nb.cells[-1].source = (f"**Answer:** As the tokens go **deeper** {SCRIPT_ANSWER} into `model.layers` they:\n\n"
                           "- collapse into a few *tight* clusters on the sphere\n- & most point the same way.")
    nb.cells.insert(len(nb.cells) - 1, nbformat.v4.new_code_cell(
        "from PIL import Image\n"
        "Image.new('RGB', (60, 30), (30, 30, 200)).save('decoder_diagram.png')\n"
        "print('<img src=x onerror=alert(2)>' + 'x' * 150000)\n"
        "raise ValueError('<b>not bold</b>')"))
    return nb


def hook_error_notebook() -> nbformat.NotebookNode:
    """The correct notebook's loading and printing cells, then errors that travel through the grader's own
    wrappers (probe.py's model_call, from_pretrained and generate; colab_env.py's __torch_function__),
    and an answer behind a plain "Answer:" label."""
    from fixtures.notebooks import build

    nb = build("correct_layer_prehook")
    code = nbformat.v4.new_code_cell
    nb.cells = nb.cells[:6] + [
        code("def save(idx):\n    def hook(module, args):\n        saved[idx] = args[0]\n    return hook\n\n"
             "for i in range(len(model.model.layers)):\n    model.model.layers[i].register_forward_pre_hook(save(i))"),
        code("inputs = tokenizer('hello world', return_tensors='pt')\nout = model(**inputs)"),
        code("x = torch.ones(2, 3, device='cuda')\ny = x @ torch.ones(2, 3).cuda()"),
        code("from transformers import Qwen3ForCausalLM\nother = Qwen3ForCausalLM.from_pretrained('nobody/nothing')"),
        code("out = model.generate(**inputs, max_new_tokens=2)"),
        nbformat.v4.new_markdown_cell("## Part 5"),
        nbformat.v4.new_markdown_cell("Answer: the tokens *cluster* together and `drift` as they go deeper."),
    ]
    return nb


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> Path:
    """`grade` run once on the four submissions; returns its --out folder."""
    from fixtures.notebooks import write_all
    from grader.cli import main

    src = tmp_path_factory.mktemp("report-submissions")
    nbformat.write(rich_notebook(), str(src / RICH_FILE))
    nbformat.write(hook_error_notebook(), str(src / f"{HOOK_ERROR}.ipynb"))
    write_all(src, ["wrong_site_mlp"])
    (src / "broken.ipynb").write_text("{ not json <script>alert(3)</script>")
    out = tmp_path_factory.mktemp("report-grading") / "grading"
    assert main([str(src), "--out", str(out), "--workers", "2"]) == 0
    return out


@pytest.fixture(scope="session")
def golden():
    from grader.judge.golden import GoldenStore

    return GoldenStore("tiny")


def page(graded: Path, sid: str) -> str:
    return (graded / sid / "report.html").read_text()


def results(graded: Path, sid: str) -> dict:
    return json.loads((graded / sid / "results.json").read_text())


def execution(graded: Path, sid: str) -> dict:
    return json.loads((graded / sid / "execution.json").read_text())


# --- report.html --------------------------------------------------------------------------------


def test_every_graded_submission_has_a_report(graded):
    ids = sorted(p.parent.name for p in graded.glob("*/results.json"))
    assert ids == sorted([RICH, "wrong_site_mlp", HOOK_ERROR, "broken"])
    for sid in ids:
        assert page(graded, sid).startswith("<!doctype html>")


def test_score_table_lists_every_check_with_points_and_feedback(graded):
    html = page(graded, RICH)
    res = results(graded, RICH)
    assert f'{res["score"]:g}<span class="of"> / 100' in html
    for check in res["extra_data"]["checks"]:
        assert f'<td class="mono nowrap">{check["id"]}</td>' in html
        if not check["manual"]:
            assert f'{check["points"]:g} / {check["max_points"]:g}</td>' in html
    assert html.count(">TA to grade</span>") >= 2  # p2.diagram and p5.explanation, plus the header
    assert "All 36 layers in `activations` equal resid_pre." in html  # a check's feedback text
    assert "Ran to the end, but some cells raised errors" in html
    failed = next(c for c in execution(graded, RICH)["cells"] if c["ename"])
    assert f"cell In [{failed['execution_count']}]: ValueError" in html  # the reason, in words


def test_hook_table_and_site_strip(graded):
    rich, wrong = page(graded, RICH), page(graded, "wrong_site_mlp")
    assert "<td class=\"mono\">model.layers.N</td>" in rich and "forward_pre" in rich
    assert len(re.findall(r'<div class="cell site-ok"', rich)) == 36
    assert "<strong>36 of 36</strong> layers hold the residual stream" in rich
    assert "model.layers.N.mlp" in wrong
    assert len(re.findall(r'<div class="cell site-mlp_out" title="layer \d+ \(key \d+\)', wrong)) == 36
    assert "the MLP output of layer 7 (mlp_out)" in wrong  # a cell's tooltip
    assert "<strong>0 of 36</strong> layers" in wrong


def test_plots_gif_and_diagrams_are_inline_images(graded):
    html = page(graded, RICH)
    assert re.search(r'<img class="chart" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)
    assert re.search(r'<img class="spheres" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', html)
    assert re.search(r'<img class="metrics-chart" src="data:image/png;base64,', html)
    assert re.search(r'<img class="gif" src="data:image/gif;base64,R0lGOD', html)  # the GIF itself
    assert "36 frame(s)" in html
    assert re.search(r'<img class="diagram" src="data:image/png;base64,[^"]+" alt="decoder_diagram.png"', html)
    assert re.search(r'<img class="diagram" src="data:image/png;base64,[^"]+" alt="sketch.png \(embedded', html)
    assert "https://example.com/d.png (a remote image linked from a markdown cell: not loaded, not counted as a diagram)" in html


@pytest.mark.parametrize("sid", [RICH, "wrong_site_mlp", HOOK_ERROR, "broken"])
def test_pages_load_nothing_from_the_network(graded, sid):
    html = page(graded, sid)
    assert not NETWORK_LOAD.search(html), NETWORK_LOAD.search(html)
    assert "<link" not in html and "<script" not in html  # no scripts at all on a submission page
    for src in re.findall(r'\bsrc="([^"]*)"', html):
        assert src.startswith("data:image/"), src[:80]
    assert "default-src 'none'" in html  # CSP: even a missed escape could not load or run anything


def test_student_text_is_escaped(graded):
    html = page(graded, RICH)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'<div class="answer md"><p>As the tokens go <strong>deeper</strong> &lt;script&gt;alert\(1\)'
                     r'&lt;/script&gt;', html)
    assert "alert(1)</script>" not in html and "alert(2)>" not in html
    assert "ValueError: &lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold" not in html
    assert "\x1b" not in html and "[31m" not in html  # tracebacks lose their colour codes
    assert "<script>alert(3)" not in page(graded, "broken")


def test_traceback_and_notes(graded):
    html = page(graded, RICH)
    failed = next(c for c in execution(graded, RICH)["cells"] if c["ename"])
    assert f'<span class="badge bad">In [{failed["execution_count"]}]</span>' in html
    assert "----&gt; 4 raise ValueError(" in html  # the traceback, ANSI-free
    assert "Submitted late" in html and ">LATE</span>" in html
    assert f"The output of cell In [{failed['execution_count']}] was truncated" in html


def test_unjudged_submission_renders_with_its_reason(graded):
    assert not (graded / "broken" / "comparison.json").exists()
    html = page(graded, "broken")
    assert "Not graded: not a readable notebook" in html
    assert "None of the checks could be run: broken.ipynb is not a Jupyter notebook" in html
    assert 'id="part5"' not in html and 'class="cell site-' not in html
    for check in results(graded, "broken")["extra_data"]["checks"]:
        assert check["id"] in html


def test_large_gif_is_shown_as_its_first_frame(graded, golden, tmp_path, monkeypatch):
    from grader.judge.verdicts import judge
    from grader.report import sections
    from grader.results import Result
    from grader.judge.rubric.config import load_rubric

    out = tmp_path / RICH
    shutil.copytree(graded / RICH, out)
    gif_bytes = (out / "files" / "tokens.gif").stat().st_size
    monkeypatch.setattr(sections, "MAX_INLINE_GIF_BYTES", gif_bytes - 1)  # as if it were over 5 MB
    result = Result.read(out)
    html = render_submission(out, result, judge(out, golden, load_rubric(), result.submission.attachments))
    assert "Too large to embed: first frame only." in html
    assert re.search(r'<img class="gif" src="data:image/png;base64,', html)
    assert "data:image/gif" not in html


def test_strip_ansi():
    assert strip_ansi("\x1b[31mNameError\x1b[39m \x1b[38;5;66;03m# c\x1b[39;00m") == "NameError # c"


# --- what a student and a TA read: the answer, tracebacks, cell names, sphere labels --------------


def _section(html: str, start: str, end: str) -> str:
    i = html.index(start)
    return html[i:html.index(end, i)]


@pytest.mark.parametrize("typed, body", [
    ("Answer: the tokens cluster", "the tokens cluster"),
    ("**Answer:** the tokens cluster", "the tokens cluster"),
    ("**Answer**: the tokens cluster", "the tokens cluster"),
    ("A: the tokens cluster", "the tokens cluster"),
    ("My answer: the tokens cluster", "the tokens cluster"),
    ("_Explanation:_ the tokens cluster", "the tokens cluster"),
    ("## Answer\nThe tokens cluster", "The tokens cluster"),
    ("**Answer**\n\nThe tokens cluster", "The tokens cluster"),
    ("**Answer: the tokens cluster.**", "**the tokens cluster.**"),  # the emphasis it opened is kept
    ("A token drifts to the pole", "A token drifts to the pole"),  # a word, not a label
    ("Answer the question: why", "Answer the question: why"),
    ("Answers: many", "Answers: many"),
    ("Answer:", "Answer:"),  # nothing but a label: shown as it is
])
def test_answer_body_drops_only_a_typed_label(typed, body):
    from grader.judge.evidence import answer_body

    assert answer_body(typed) == body


def test_answer_shows_as_markdown_with_one_label_and_is_stored_as_written(graded):
    stored = results(graded, RICH)["extra_data"]["answer"]
    assert stored.startswith("**Answer:** As the tokens go **deeper**")  # what the student wrote, label and all
    html = page(graded, RICH)
    panel = _section(html, "Explanation (p5.explanation)", "What the student saw")
    assert "<strong>deeper</strong>" in panel and "<em>tight</em>" in panel and "<code>model.layers</code>" in panel
    assert "<li>collapse into a few" in panel and "Answer:" not in panel and "**" not in panel
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel and "<script" not in panel
    row = _section(html, '<td class="mono nowrap">p5.explanation</td>', "</tr>")
    assert row.count("Answer:") == 1 and "<strong>deeper</strong>" in row  # the note's own label, once
    from grader.results import Result

    note = next(c.output for c in Result.read(graded / RICH).checks if c.id == "p5.explanation")
    assert note == "Answer: " + stored.removeprefix("**Answer:** ")  # results.json / Gradescope / the self-check
    plain = page(graded, HOOK_ERROR)
    assert "<p>the tokens <em>cluster</em> together and <code>drift</code> as they go deeper.</p>" in plain
    assert _section(plain, '<td class="mono nowrap">p5.explanation</td>', "</tr>").count("Answer:") == 1


def test_answer_on_the_review_and_feedback_pages(graded, tmp_path):
    from grader.manual.review import create_app
    from grader.run.feedback import write_feedback

    app = create_app(graded, "ana")
    app.testing = True
    review = app.test_client().get(f"/s/{RICH}").get_data(as_text=True)
    panel = _section(review, 'id="answer"', "</section>")
    assert "<strong>deeper</strong>" in panel and "Answer:" not in panel and "&lt;script&gt;" in panel
    write_feedback(graded, tmp_path / "feedback", after_due=True)
    student = (tmp_path / "feedback" / RICH / "feedback.html").read_text()
    mine = _section(student, "Your written answer", "</section>")
    assert "<strong>deeper</strong>" in mine and "Answer:" not in mine and "<script" not in mine


def test_tracebacks_show_the_students_code_not_the_graders(graded):
    import torch

    cells = {c["execution_count"]: c for c in execution(graded, HOOK_ERROR)["cells"] if c["ename"]}
    raw = {n: strip_ansi("\n".join(c["traceback"])) for n, c in cells.items()}
    hook, matmul, load, gen = sorted(cells)  # the four failing cells, in notebook order
    torch_dir = str(Path(torch.__file__).resolve().parent)
    # kernel-side: IPython hid the recorder's wrappers (model_call, from_pretrained, generate): __tracebackhide__
    for n in (hook, load, gen):
        assert "<grader-" not in raw[n], raw[n][:3000]
    assert "saved[idx] = args[0]" in raw[hook] and torch_dir in raw[hook]  # execution.json keeps full paths
    assert "<grader-" in raw[matmul]  # the shim's __torch_function__ is the innermost frame: IPython shows it
    run = _section(page(graded, HOOK_ERROR), 'id="run"', "</section>")
    assert "&lt;grader-" not in run and "<grader-" not in run and torch_dir not in run, run[:3000]
    assert str(Path(torch_dir).parents[1]) not in run  # no absolute library path at all
    assert "File site-packages/torch/nn/modules/module.py:" in run  # library frames stay, with short paths
    assert "----&gt; 3         saved[idx] = args[0]" in run  # the student's hook, where it failed
    assert f"Cell In[{hook}], line 2" in run and "NameError: name &#39;saved&#39; is not defined" in run
    assert "----&gt; 2 y = x @ torch.ones(2, 3).cuda()" in run and "RuntimeError: mat1 and mat2" in run
    # a long traceback folds library frames, never the student's: the chained error keeps its own line
    assert "The above exception was the direct cause" in run and "library frames not shown" in run
    assert "----&gt; 2 other = Qwen3ForCausalLM.from_pretrained(&#39;nobody/nothing&#39;)" in run


def test_cells_are_named_as_the_executed_notebook_numbers_them(graded):
    from grader.execute.records import read_execution

    rec = read_execution(graded / HOOK_ERROR / "execution.json")
    executed = nbformat.read(str(graded / HOOK_ERROR / "executed.ipynb"), as_version=4)
    for c in rec.cells:  # execution.json keeps both: the notebook index and the count the run gave the cell
        assert executed.cells[c.index].execution_count == c.execution_count
    first = rec.cell_errors[0]
    assert f"the first, cell In [{first.execution_count}]: NameError" in rec.reason
    assert f"Cell In[{first.execution_count}], line 2" in strip_ansi("\n".join(first.traceback))
    html = page(graded, HOOK_ERROR)
    assert f'<span class="badge bad">In [{first.execution_count}]</span>' in html
    assert f"cell {first.index}" not in rec.reason and f"cell {first.index}" not in html
    hooks_cell = {h["cell"] for h in rec.hooks}.pop()  # all 36 registered in one cell
    count = next(c.execution_count for c in rec.cells if c.index == hooks_cell)
    assert f'<td class="num nowrap">In [{count}]</td>' in _section(html, 'id="part3"', "</section>")


def test_a_cell_that_did_not_run_is_named_by_where_it_is():
    from grader.execute.records import CellRecord, ExecutionRecord

    rec = ExecutionRecord("s", "timeout", "", cells=[CellRecord(1, 1, 0.1), CellRecord(3, 2, 0.1),
                                                    CellRecord(5, None, 0.0, "DeadKernelError")])
    assert rec.cell_name(3) == "cell In [2]"
    assert rec.cell_name(5) == rec.cell_name(7) == "the code cell after In [2]"
    assert rec.cell_name(0) == "the first code cell"


def test_self_check_names_cells_as_the_run_does(graded):
    from fixtures.notebooks import build
    from grader.execute.records import read_execution
    from grader.run.selfcheck import run_label

    rec = read_execution(graded / "wrong_site_mlp" / "execution.json")
    nb = build("wrong_site_mlp")  # the notebook as submitted
    assert rec.cells and all(run_label(nb, c.index) == c.label for c in rec.cells)


def test_wrong_site_sphere_label_says_what_it_compares_with(graded):
    from grader.judge.projections import PROJECTION_MEDIAN_DEG

    wrong = _section(page(graded, "wrong_site_mlp"), 'id="part5"', "</section>")
    captions = re.findall(r"<li>(Layer \d+, median token angle: .*?)</li>", wrong)
    assert len(captions) == 3, wrong[:2000]
    for text in captions:
        assert "to the PCA of the student&#39;s own captures (mlp_out, not resid_pre), which Part 5 is judged" in text
        to_ref = re.search(r"; ([\d.]+)° to the reference drawn below \(resid_pre: the assignment&#39;s answer\)", text)
        assert to_ref and float(to_ref.group(1)) > PROJECTION_MEDIAN_DEG, text  # far from the assignment's answer
    assert "36/36 layers match the PCA of its own captures" in page(graded, "wrong_site_mlp")
    right = _section(page(graded, RICH), 'id="part5"', "</section>")
    assert "to the PCA of the student&#39;s own captures, which Part 5 is judged against" in right
    assert "<0.01° to the reference drawn below".replace("<", "&lt;") in right
    assert "36/36 layers match</li>" in page(graded, RICH)


# --- index.html ---------------------------------------------------------------------------------


def test_index_links_every_submission_and_summarises(graded):
    html = (graded / "index.html").read_text()
    for sid in (RICH, "wrong_site_mlp", HOOK_ERROR, "broken"):
        assert f'<a href="{sid}/report.html">{sid}</a>' in html
    assert '<svg class="hist"' in html
    assert "captures: mlp_out" in html  # a mistake class
    assert "status: invalid_notebook" in html
    assert "Not graded: not a readable notebook" in html  # the status summary
    assert ">late</span>" in html
    assert not NETWORK_LOAD.search(html)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(__import__("hashlib").sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html  # only this script may run


def test_index_escapes_and_rebuilds_from_rows(graded, tmp_path):
    from grader.report.totals import totals
    from grader.results import load_results

    rows = totals(graded, load_results(graded))
    rows[0].result.submission.student_name = "<img src=x onerror=alert(4)>"
    html = write_index(tmp_path, rows).read_text()
    assert "&lt;img src=x onerror=alert(4)&gt;" in html and "<img src=x" not in html
    assert 'href="' not in html.split('id="subs"')[1].split("</table>")[0]  # no report.html under tmp_path


# --- in a browser -------------------------------------------------------------------------------


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path:
        return path
    if os.environ.get("QGRADER_SKIP_BROWSER") == "1":
        pytest.skip("chromium is not installed and QGRADER_SKIP_BROWSER=1")
    pytest.fail("headless Chromium is needed to render the reports: install it (Debian: apt-get install -y "
                "chromium) or set QGRADER_SKIP_BROWSER=1 to skip the browser tests")


def run_chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_report_screenshot(graded, tmp_path):
    from PIL import Image

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    proc = run_chromium(tmp_path, (graded / RICH / "report.html").as_uri(), f"--screenshot={shot}",
                        "--window-size=1280,2400")
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 100_000
    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        colours = im.convert("RGB").resize((64, 120)).getcolors(64 * 120)
        assert colours is not None and len(colours) > 50  # a drawn page, not a blank one


def _row_order(dom: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', dom)


def test_index_sorts_in_the_browser(graded, tmp_path):
    index = graded / "index.html"
    scores = {r: results(graded, r)["score"] for r in (RICH, "wrong_site_mlp", HOOK_ERROR, "broken")}
    up = run_chromium(tmp_path, index.as_uri() + "#sort=score", "--dump-dom")
    down = run_chromium(tmp_path, index.as_uri() + "#sort=score-desc", "--dump-dom")
    assert _row_order(up.stdout) == sorted(scores, key=scores.get), up.stderr[-2000:]
    assert _row_order(down.stdout) == sorted(scores, key=scores.get, reverse=True)
    assert 'aria-sort="descending"' in down.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    run_chromium(tmp_path, index.as_uri(), f"--screenshot={ARTIFACTS / 'index.png'}", "--window-size=1280,1000")
    assert (ARTIFACTS / "index.png").is_file()
