"""The HTML reports, on real graded output: report.html per submission and the class index.html.

One session fixture grades three submissions with the real `grade` command (about a minute):
a correct fixture notebook enriched with untrusted text (a <script> in the answer, HTML in an
exception message and in printed output, a diagram written to disk and one embedded in markdown,
an output that gets truncated), the wrong-site fixture notebook, and a file that is not a notebook
(judged without comparison.json). The browser tests render pages in headless Chromium and save
screenshots under test-artifacts/; without Chromium they fail unless QGRADER_SKIP_BROWSER=1.
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
    nb.cells[-1].source = (f"As the tokens go deeper {SCRIPT_ANSWER} into the model they collapse into a few "
                           "tight clusters on the sphere & most point the same way.")
    nb.cells.insert(len(nb.cells) - 1, nbformat.v4.new_code_cell(
        "from PIL import Image\n"
        "Image.new('RGB', (60, 30), (30, 30, 200)).save('decoder_diagram.png')\n"
        "print('<img src=x onerror=alert(2)>' + 'x' * 150000)\n"
        "raise ValueError('<b>not bold</b>')"))
    return nb


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> Path:
    """`grade` run once on the three submissions; returns its --out folder."""
    from fixtures.notebooks import write_all
    from grader.cli import main

    src = tmp_path_factory.mktemp("report-submissions")
    nbformat.write(rich_notebook(), str(src / RICH_FILE))
    write_all(src, ["wrong_site_mlp"])
    (src / "broken.ipynb").write_text("{ not json <script>alert(3)</script>")
    out = tmp_path_factory.mktemp("report-grading") / "grading"
    assert main([str(src), "--out", str(out), "--workers", "3"]) == 0
    return out


@pytest.fixture(scope="session")
def golden():
    from grader.judge.golden import GoldenStore

    return GoldenStore("tiny")


def page(graded: Path, sid: str) -> str:
    return (graded / sid / "report.html").read_text()


def results(graded: Path, sid: str) -> dict:
    return json.loads((graded / sid / "results.json").read_text())


# --- report.html --------------------------------------------------------------------------------


def test_every_graded_submission_has_a_report(graded):
    ids = sorted(p.parent.name for p in graded.glob("*/results.json"))
    assert ids == sorted([RICH, "wrong_site_mlp", "broken"])
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
    assert "cell 16: ValueError" in html  # the reason, in words


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


@pytest.mark.parametrize("sid", [RICH, "wrong_site_mlp", "broken"])
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
    assert re.search(r'<pre class="answer">As the tokens go deeper &lt;script&gt;alert\(1\)&lt;/script&gt;', html)
    assert "alert(1)</script>" not in html and "alert(2)>" not in html
    assert "ValueError: &lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold" not in html
    assert "\x1b" not in html and "[31m" not in html  # tracebacks lose their colour codes
    assert "<script>alert(3)" not in page(graded, "broken")


def test_traceback_and_notes(graded):
    html = page(graded, RICH)
    assert '<span class="badge bad">cell 16</span>' in html
    assert "----&gt; 4 raise ValueError(" in html  # the traceback, ANSI-free
    assert "Submitted late" in html and ">LATE</span>" in html
    assert "The output of cell 16 was truncated" in html


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
    from grader.rubric.config import load_rubric

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


# --- index.html ---------------------------------------------------------------------------------


def test_index_links_every_submission_and_summarises(graded):
    html = (graded / "index.html").read_text()
    for sid in (RICH, "wrong_site_mlp", "broken"):
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
    scores = {r: results(graded, r)["score"] for r in (RICH, "wrong_site_mlp", "broken")}
    up = run_chromium(tmp_path, index.as_uri() + "#sort=score", "--dump-dom")
    down = run_chromium(tmp_path, index.as_uri() + "#sort=score-desc", "--dump-dom")
    assert _row_order(up.stdout) == sorted(scores, key=scores.get), up.stderr[-2000:]
    assert _row_order(down.stdout) == sorted(scores, key=scores.get, reverse=True)
    assert 'aria-sort="descending"' in down.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    run_chromium(tmp_path, index.as_uri(), f"--screenshot={ARTIFACTS / 'index.png'}", "--window-size=1280,1000")
    assert (ARTIFACTS / "index.png").is_file()
