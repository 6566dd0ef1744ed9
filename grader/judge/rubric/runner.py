"""Run the rubric (grader/judge/rubric/checks) on one judged submission, in-process: one CheckResult per check."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from grader.results import CheckResult
from grader.judge.rubric import plugin
from grader.judge.rubric.config import CHECK_IDS

CHECKS_DIR = Path(__file__).resolve().parent / "checks"


class _Injector:
    """Puts the submission and the rubric into config.stash; takes the results out at the end."""

    def __init__(self, ctx, rubric: dict):
        self.ctx, self.rubric = ctx, rubric
        self.results: list[CheckResult] = []
        self.collected: list[str] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[plugin.CONTEXT_KEY] = self.ctx
        config.stash[plugin.RUBRIC_KEY] = self.rubric

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [plugin.check_id(item) for item in session.items]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.results = list(config.stash.get(plugin.RESULTS_KEY, []))


def run_rubric(ctx, rubric: dict) -> list[CheckResult]:
    injector = _Injector(ctx, rubric)
    args = [str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini"), "--rootdir", str(CHECKS_DIR),
            "-p", "no:terminal", "-p", "no:randomly", "-p", "no:xdist", "-p", "no:warnings"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = pytest.main(args, plugins=[plugin, injector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or len(injector.results) != len(injector.collected):
        raise RuntimeError(f"the rubric did not run cleanly (pytest exit {code!r}): {err.getvalue()[-1500:]}")
    return injector.results


def not_graded(rubric: dict, reason: str) -> list[CheckResult]:
    """Every enabled check failed with the same reason (for submissions that could not be judged)."""
    defaults = declared_checks()
    results = []
    for cid in CHECK_IDS:
        entry = rubric.get(cid, {})
        if entry.get("enabled", True) is False:
            continue
        title, points, manual = defaults[cid]
        results.append(CheckResult(id=cid, title=entry.get("title", title), max_points=float(entry.get("points", points)), points=0.0,
                                   status="failed", feedback=f"Not graded: {reason}", manual=manual))
    return results


def declared_checks() -> dict[str, tuple[str, float, bool]]:
    """check id -> (title, points, manual), read from the markers on the check functions."""
    import importlib

    out = {}
    for path in sorted(CHECKS_DIR.glob("test_*.py")):
        module = importlib.import_module(f"grader.judge.rubric.checks.{path.stem}")
        for name in dir(module):
            fn = getattr(module, name)
            marks = {m.name: m for m in getattr(fn, "pytestmark", [])}
            if name.startswith("test_") and "check" in marks:
                out[marks["check"].args[0]] = (marks["check"].args[1], float(marks["points"].args[0]),
                                               "manual" in marks)
    return out
