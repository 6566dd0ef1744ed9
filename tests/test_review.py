"""grader/manual/review.py: the TA's review pages, through Flask's test client and in a real headless
Chromium (Selenium) against `serve` on a free 127.0.0.1 port. The browser test needs Debian's
`chromium` and `chromium-driver` and the `selenium` package; set QGRADER_SKIP_BROWSER=1 to skip it
where they cannot be installed. It writes test-artifacts/review.png."""

from __future__ import annotations

import base64
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from grader.manual import outdir
from grader.manual import student_view as student_view_mod
from grader.manual.review import create_app, serve, student_view
from grader.manual.sample import make_sample_out_dir, write_result
from grader.manual.store import ManualStore
from grader.results import Result

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
XSS = "<script>alert('x')</script> & <b>bold</b>"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = make_sample_out_dir(tmp_path / "grading")
    write_result(d / "grace_2", Result.read(d / "grace_2"), answer=XSS)
    return d


@pytest.fixture
def client(out_dir):
    app = create_app(out_dir, "ana")
    app.testing = True
    return app.test_client()


def _text(resp) -> str:
    return resp.get_data(as_text=True)


# ---- Flask test client -----------------------------------------------------------------------------

def test_index_lists_pending_first_with_counts(client, out_dir):
    ManualStore(out_dir).set_many([("ada_1", "p2.diagram", 9, ""), ("ada_1", "p5.explanation", 5, "")], "ana")
    r = client.get("/")
    assert r.status_code == 200
    html = _text(r)
    order = re.findall(r'<tr data-id="([^"]+)"', html)
    assert order == ["grace_2", "ivan_3", "ada_1"]  # pending first, the finished one last
    assert "3 submissions" in html and "<strong>2</strong> with manual checks to grade (4 checks)" in html
    assert "1 done" in html


def test_every_submission_page_serves(client, out_dir):
    for sid in outdir.submission_ids(out_dir):
        r = client.get(f"/s/{sid}")
        assert r.status_code == 200, sid
        html = _text(r)
        assert 'name="points:p2.diagram"' in html and 'name="points:p5.explanation"' in html
        assert 'max="10"' in html and 'max="5"' in html
        assert 'id="student-view"' in html and 'id="verdicts"' in html
        assert "p3.captures_match" in html  # the automated verdicts
    ada = _text(client.get("/s/ada_1"))
    assert "Ada Lovelace" in ada and "drift into two tight clusters" in ada
    assert '<img src="/s/ada_1/file/files/decoder_diagram.png"' in ada
    assert 'src="data:image/gif;base64,R0lGOD' in ada  # tokens.gif, what the student saw
    assert _gif_uri(out_dir / "ada_1" / "submitted" / "tokens.gif") in ada  # the one they submitted ...
    assert _gif_uri(out_dir / "ada_1" / "files" / "tokens.gif") not in ada  # ... not the grader's re-run
    assert 'id="nav-next" rel="next" href="/s/grace_2"' in ada and 'id="nav-prev"' not in ada
    grace = _text(client.get("/s/grace_2"))
    assert 'src="data:image/png;base64,iVBOR' in grace and "embedded in markdown cell 1" in grace
    assert "image output stored in cell 2 of the submitted notebook" in grace
    assert "late" in grace and 'href="/s/ada_1"' in grace and 'href="/s/ivan_3"' in grace
    ivan = _text(client.get("/s/ivan_3"))
    assert "No diagram image" in ivan and "no written answer" in ivan
    assert "submitted no GIF (<code>tokens.gif</code>)" in ivan
    assert client.get("/s/ada_1/file/files/decoder_diagram.png").data[:8] == b"\x89PNG\r\n\x1a\n"


def _gif_uri(path: Path) -> str:
    return "data:image/gif;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def test_student_view_feeds_the_block(out_dir):
    ada = student_view(out_dir, "ada_1")
    assert ada["gif"] == _gif_uri(out_dir / "ada_1" / "submitted" / "tokens.gif") and ada["gif_name"] == "tokens.gif"
    assert ada["images"] == [] and ada["stored_outputs"] == 1
    grace = student_view(out_dir, "grace_2")  # the grader's re-run wrote files/tokens.gif; she submitted no GIF
    assert (out_dir / "grace_2" / "files" / "tokens.gif").is_file() and grace["gif"] is None
    assert [im["cell"] for im in grace["images"]] == [2] and grace["images"][0]["src"].startswith("data:image/png")
    ivan = student_view(out_dir, "ivan_3")
    assert (ivan["gif"], ivan["images"], ivan["stored_outputs"]) == (None, [], 0)


def test_student_view_never_leaves_the_folder(out_dir, tmp_path):
    outside = tmp_path / "outside.gif"
    outside.write_bytes((out_dir / "ada_1" / "submitted" / "tokens.gif").read_bytes())
    (out_dir / "ada_1" / "submitted" / "tokens.gif").unlink()
    (out_dir / "ada_1" / "submitted" / "tokens.gif").symlink_to(outside)
    (out_dir / "grace_2" / "submitted" / "notebook.ipynb").rename(tmp_path / "grace.ipynb")
    (out_dir / "grace_2" / "submitted" / "notebook.ipynb").symlink_to(tmp_path / "grace.ipynb")
    assert student_view(out_dir, "ada_1")["gif"] is None
    assert student_view(out_dir, "grace_2")["images"] == []


def test_real_model_panel_is_shown_when_there_is_one(client, monkeypatch):
    panel = {"model": "SmolLM2-135M-Instruct", "chart": "data:image/png;base64,iVBORw0KGgo=",
             "rows": [{"layer": 0, "cosine": "0.12", "outlier": "1.0"},
                      {"layer": 29, "cosine": "0.93", "outlier": "41"}]}
    monkeypatch.setattr(student_view_mod, "_PANEL", [])
    monkeypatch.setattr(student_view_mod, "real_model_panel", lambda: panel)
    html = _text(client.get("/s/ada_1"))
    assert 'id="real-model"' in html and "SmolLM2-135M-Instruct" in html and "0.93" in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html

    def missing():
        raise FileNotFoundError("grader/report/dynamics.json")

    for unavailable in (missing, lambda: None):  # not computed yet / dynamics.py not finished
        monkeypatch.setattr(student_view_mod, "_PANEL", [])
        monkeypatch.setattr(student_view_mod, "real_model_panel", unavailable)
        r = client.get("/s/ada_1")
        assert r.status_code == 200 and 'id="real-model"' not in _text(r) and 'id="student-view"' in _text(r)


def test_everything_is_escaped_and_scripts_need_the_nonce(client):
    r = client.get("/s/grace_2")
    html = _text(r)
    assert XSS not in html and "<p>&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;</p>" in html  # markdown, HTML as text
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert re.findall(r"<script[^>]*>", html) == [f'<script nonce="{nonce}">']
    assert "default-src 'none'" in csp and r.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("url", [
    "/s/ada_1/file/../../manual.json", "/s/ada_1/file/%2e%2e/%2e%2e/manual.json", "/s/ada_1/file/..%2f..%2fmanual.json",
    "/s/ada_1/file/%2Fetc%2Fpasswd", "/s/ada_1/file//etc/passwd", "/s/ada_1/file/files/../../grace_2/results.json",
    "/s/ada_1/file/files/escape.png", "/s/ada_1/file/files/sibling.png", "/s/ada_1/file/.secret",
    "/s/ada_1/file/files", "/s/ada_1/file/C:%5Cwindows%5Cwin.ini", "/s/ada_1/file/files%5C..%5C..%5Cmanual.json",
    "/s/..%2f..%2fetc/file/passwd", "/s/nobody_9", "/s/outside_9", "/s/outside_9/file/results.json", "/s/.", "/s/..",
])
def test_path_traversal_is_refused(client, out_dir, tmp_path, url):
    ManualStore(out_dir).set("ada_1", "p2.diagram", 1, "", "ana")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (out_dir / "ada_1" / "files" / "escape.png").symlink_to(secret)  # a symlink leaving DIR
    (out_dir / "ada_1" / "files" / "sibling.png").symlink_to(out_dir / "grace_2" / "results.json")
    (out_dir / "ada_1" / ".secret").write_text("hidden-marker-7f3a")
    outside = tmp_path / "outside"
    shutil.copytree(out_dir / "ivan_3", outside)
    (out_dir / "outside_9").symlink_to(outside)  # a submission folder that is a symlink out of DIR
    r = client.get(url, follow_redirects=True)
    assert r.status_code == 404, (url, r.status_code)
    assert b"top secret" not in r.data and b"hidden-marker-7f3a" not in r.data and b'"submissions"' not in r.data
    assert "outside_9" not in _text(client.get("/"))


def test_post_saves_and_redirects(client, out_dir):
    r = client.post("/s/ada_1", data={"points:p2.diagram": "8.5", "comment:p2.diagram": "Missing\r\nthe MLP add.",
                                      "points:p5.explanation": "", "comment:p5.explanation": "", "then": "stay"})
    assert r.status_code == 303 and r.headers["Location"] == "/s/ada_1?saved=ada_1"
    e = ManualStore(out_dir).get("ada_1", "p2.diagram")
    assert (e.points, e.comment, e.grader) == (8.5, "Missing\nthe MLP add.", "ana")
    assert ManualStore(out_dir).get("ada_1", "p5.explanation") is None
    page = _text(client.get(r.headers["Location"]))
    assert 'id="saved"' in page and 'value="8.5"' in page and "saved 8.5 by ana" in page

    r = client.post("/s/ada_1", data={"points:p5.explanation": "3", "then": "next"})
    assert r.status_code == 303 and r.headers["Location"] == "/s/grace_2?saved=ada_1"
    assert ManualStore(out_dir).get("ada_1", "p5.explanation").points == 3
    assert "Saved ada_1." in _text(client.get(r.headers["Location"]))


def test_post_with_bad_points_writes_nothing(client, out_dir):
    ManualStore(out_dir).set("ada_1", "p5.explanation", 2, "", "ana")
    before = (out_dir / "manual.json").read_bytes()
    for data, words in [({"points:p2.diagram": "11"}, "between 0 and 10"),
                        ({"points:p2.diagram": "abc"}, "must be a number"),
                        ({"points:p2.diagram": "5", "points:p5.explanation": "-2"}, "between 0 and 5"),
                        ({"comment:p2.diagram": "no points"}, "enter points")]:
        r = client.post("/s/ada_1", data=data)
        assert r.status_code == 400 and words in _text(r), data
    assert 'value="11"' in _text(client.post("/s/ada_1", data={"points:p2.diagram": "11"}))  # kept for fixing
    assert (out_dir / "manual.json").read_bytes() == before


def test_foreign_posts_and_hosts_are_refused(client, out_dir):
    data = {"points:p2.diagram": "5"}
    assert client.post("/s/ada_1", data=data, headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/s/ada_1", data=data, headers={"Origin": "null"}).status_code == 403
    assert client.post("/s/ada_1", data=data, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/", headers={"Host": "evil.example:8000"}).status_code == 400  # DNS rebinding
    assert client.post("/s/nobody_9", data=data).status_code == 404
    assert not (out_dir / "manual.json").exists()
    assert client.post("/s/ada_1", data=data, headers={"Origin": "http://localhost"}).status_code == 303
    assert ManualStore(out_dir).get("ada_1", "p2.diagram").points == 5


def test_stale_grade_is_flagged(client, out_dir):
    ManualStore(out_dir).set("ada_1", "p2.diagram", 7, "", "ana")
    write_result(out_dir / "ada_1", Result.read(out_dir / "ada_1"), notebook_sha256="e" * 64)  # a regraded resubmission
    html = _text(client.get("/s/ada_1"))
    assert "stale: graded for an earlier version of the notebook" in html and "This notebook changed" in html
    assert "1 stale" in _text(client.get("/"))


# ---- a real browser -------------------------------------------------------------------------------

def _browser_or_skip():
    skip = os.environ.get("QGRADER_SKIP_BROWSER") == "1"
    chromium = next((p for p in (*CHROMIUM, shutil.which("chromium") or "") if p and os.path.exists(p)), None)
    missing = []
    if chromium is None:
        missing.append("chromium (apt-get install -y chromium)")
    if not os.path.exists(CHROMEDRIVER):
        missing.append(f"{CHROMEDRIVER} (apt-get install -y chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install 'selenium>=4', or pip install -e '.[test]')")
    if missing:
        msg = "the headless-browser test needs " + ", ".join(missing) + "; set QGRADER_SKIP_BROWSER=1 to skip it"
        if skip:
            pytest.skip(msg)
        pytest.fail(msg)
    return chromium


@pytest.fixture
def server(out_dir):
    started, holder = threading.Event(), {}

    def ready(srv):
        holder["server"] = srv
        started.set()

    thread = threading.Thread(target=serve, args=(out_dir,), daemon=True,
                              kwargs={"port": 0, "grader_name": "browser-ta", "log": lambda _: None, "ready": ready})
    thread.start()
    assert started.wait(30), "the review server did not start"
    srv = holder["server"]
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(10)


def test_browser_enters_points(out_dir, server):
    chromium = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1360,1400",
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(server + "/")
        assert [e.get_attribute("data-id") for e in driver.find_elements(By.CSS_SELECTOR, "#submissions tbody tr")] \
            == ["ada_1", "grace_2", "ivan_3"]
        driver.find_element(By.LINK_TEXT, "ada_1").click()
        wait.until(EC.url_contains("/s/ada_1"))

        points = driver.find_element(By.NAME, "points:p2.diagram")
        points.clear()
        points.send_keys("8.5")
        driver.find_element(By.NAME, "comment:p2.diagram").send_keys("All six boxes; the second skip add is unlabeled.")
        driver.find_element(By.NAME, "points:p5.explanation").send_keys("4")
        driver.find_element(By.NAME, "comment:p5.explanation").send_keys("Clusters named; say which layers.")
        driver.find_element(By.ID, "save").click()
        wait.until(EC.presence_of_element_located((By.ID, "saved")))
        assert driver.current_url.endswith("/s/ada_1?saved=ada_1")

        store = ManualStore(out_dir)
        e1, e2 = store.get("ada_1", "p2.diagram"), store.get("ada_1", "p5.explanation")
        assert (e1.points, e1.comment, e1.grader) == (8.5, "All six boxes; the second skip add is unlabeled.", "browser-ta")
        assert (e2.points, e2.comment) == (4.0, "Clusters named; say which layers.")
        assert driver.find_element(By.NAME, "points:p2.diagram").get_attribute("value") == "8.5"
        images = driver.find_elements(By.CSS_SELECTOR, "#diagram img, #student-view img")
        assert len(images) == 2 and all(driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", im) for im in images)

        ARTIFACTS.mkdir(exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1360, min(height + 140, 4000))  # the whole page in the screenshot
        driver.save_screenshot(str(ARTIFACTS / "review.png"))

        driver.find_element(By.TAG_NAME, "body").send_keys("j")  # keyboard: next submission
        wait.until(EC.url_contains("/s/grace_2"))
        assert "Grace Hopper" in driver.find_element(By.TAG_NAME, "h1").text
        driver.find_element(By.TAG_NAME, "body").send_keys("k")  # and back
        wait.until(EC.url_matches(r"/s/ada_1$"))
        assert (ARTIFACTS / "review.png").stat().st_size > 10_000
    finally:
        driver.quit()
