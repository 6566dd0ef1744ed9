"""The pytest plugin that turns the rubric's test functions into scored checks.

A check is a test function in grader/judge/rubric/checks/ marked with its stable id, title and points:

    @pytest.mark.check("p3.hook_site", "Hooks read each decoder layer's input")
    @pytest.mark.points(10)
    def test_hook_site(ctx, note): ...

The assertion message is the feedback the student reads (pytest's own explanation of the failed
expression is cut off). Wrap the how-to-fix part of a message in `hint(...)`:

    assert ok, f"None of your hooks can read the input of layers {bad}." + hint(" Read it with ...")

the plugin keeps the full text as the feedback (results.json, the reports) and the marked parts in
`CheckResult.hint`, so a student at "brief" visibility (rubric.toml `self_check` / `released`) reads
what is wrong without how to fix it. `note(text)` adds feedback to a passing check. `@pytest.mark.manual`
marks a check a TA scores by hand: it runs to show the evidence, and scores 0 until then.
Points come from the marker unless the rubric (rubric.toml) overrides them or disables the check.
All state lives in `config.stash`.
"""

from __future__ import annotations

import re

import pytest

from grader.results import CheckResult
from grader.judge.rubric.config import CHECK_IDS

CONTEXT_KEY = pytest.StashKey[object]()
RUBRIC_KEY = pytest.StashKey[dict]()
RESULTS_KEY = pytest.StashKey[list]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id, title): the stable check id and a short title")
    config.addinivalue_line("markers", "points(n): default points of a check")
    config.addinivalue_line("markers", "manual: scored by a TA; the check shows the evidence")
    config.addinivalue_line("markers", "reference_answerable: the project's reference code could pass this check "
                            "for the student; no credit when the notebook imports it")
    config.stash.setdefault(RESULTS_KEY, [])


def _marker_arg(item: pytest.Item, name: str, index: int = 0, default=None):
    marker = item.get_closest_marker(name)
    return marker.args[index] if marker and len(marker.args) > index else default


def check_id(item: pytest.Item) -> str:
    cid = _marker_arg(item, "check")
    if cid is None:
        raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.check(id, title) marker")
    return cid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop checks the rubric disables; run the rest in check-id order."""
    rubric = config.stash.get(RUBRIC_KEY, {})
    kept, dropped = [], []
    for item in items:
        entry = rubric.get(check_id(item), {})
        (dropped if entry.get("enabled", True) is False else kept).append(item)
    kept.sort(key=lambda item: (CHECK_IDS.index(check_id(item)) if check_id(item) in CHECK_IDS else 99, check_id(item)))
    items[:] = kept
    if dropped:
        config.hook.pytest_deselected(items=dropped)


@pytest.fixture
def ctx(request: pytest.FixtureRequest):
    """The submission being judged: execution record, comparison, executed notebook, files."""
    return request.config.stash[CONTEXT_KEY]


_NOTES = pytest.StashKey[list]()


@pytest.fixture
def note(request: pytest.FixtureRequest):
    notes: list[str] = []
    request.node.stash[_NOTES] = notes
    return notes.append


def ta_check(check_id: str, title: str, points: float):
    """The markers of a check a TA grades by hand: @ta_check("p2.diagram", "Diagram ...", points=10)."""
    def mark(fn):
        for marker in (pytest.mark.manual, pytest.mark.points(points), pytest.mark.check(check_id, title)):
            fn = marker(fn)
        return fn

    return mark


def show_to_ta(evidence, missing: str, note, label: str) -> None:
    """The body of a TA-graded check: fail with `missing` when there is no evidence, else show it."""
    assert evidence, missing
    note(f"{label}: " + (", ".join(evidence) if isinstance(evidence, list) else str(evidence)))


HINT_OPEN, HINT_CLOSE = "\ue000", "\ue001"  # private-use characters: never in a real message
_HINT = re.compile(f"{HINT_OPEN}(.*?){HINT_CLOSE}", re.S)


def hint(text: str) -> str:
    """Mark the how-to-fix part of a feedback message (left out at "brief" visibility). Keep it one line,
    and let what is left read as a sentence: "Your hooks read X." + hint(" Hook Y instead.")."""
    return f"{HINT_OPEN}{text}{HINT_CLOSE}"


def split_hints(text: str) -> tuple[str, list[str]]:
    """(the text without the markers, the marked parts)."""
    parts = [p.strip() for p in _HINT.findall(text) if p.strip()]
    return text.replace(HINT_OPEN, "").replace(HINT_CLOSE, ""), parts


def _feedback(excinfo) -> str:
    """The assertion message alone, without pytest's rewritten-expression explanation."""
    text = str(excinfo.value)
    for marker in ("\nassert ", "\n+  where", "\nassert\n"):
        text = text.split(marker)[0]
    return text.strip() or "this check failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown":
        return
    rubric = item.config.stash.get(RUBRIC_KEY, {})
    cid = check_id(item)
    entry = rubric.get(cid, {})
    max_points = float(entry.get("points", _marker_arg(item, "points", default=0)))
    manual = item.get_closest_marker("manual") is not None
    notes = item.stash.get(_NOTES, [])
    title = item.config.stash.get(RUBRIC_KEY, {}).get(cid, {}).get("title") or _marker_arg(item, "check", 1, default=cid)
    ctx = item.config.stash.get(CONTEXT_KEY, None)
    imported = list(getattr(getattr(ctx, "execution", None), "project_imports", None) or [])
    if report.passed and imported and item.get_closest_marker("reference_answerable"):
        status, points = "failed", 0.0
        feedback = (f"Your notebook imports the grader's own code ({', '.join(imported[:3])}), which can produce this "
                    "result by itself, so this check cannot credit your work. A TA will review it.")
    elif report.passed:
        status, points, feedback = ("manual" if manual else "passed"), (0.0 if manual else max_points), ""
    elif call.excinfo is not None and call.excinfo.errisinstance((AssertionError, pytest.fail.Exception)):
        status, points, feedback = ("manual" if manual else "failed"), 0.0, _feedback(call.excinfo)
    else:
        err = call.excinfo.exconly() if call.excinfo else report.longreprtext[-500:]
        status, points = "error", 0.0
        feedback = f"The grader could not run this check ({err}). This is a grader problem, not yours; a TA will review it."
    feedback, hints = split_hints(feedback)
    cleaned = []
    for n in notes:
        text, parts = split_hints(n)
        cleaned.append(text)
        hints += parts
    item.config.stash[RESULTS_KEY].append(
        CheckResult(id=cid, title=title, max_points=max_points, points=points, status=status,
                    feedback=feedback, manual=manual, notes=cleaned, hint="\n".join(hints))
    )
