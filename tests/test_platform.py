"""The sandbox where Linux's pieces are missing: no `resource` module (Windows), no prctl or namespaces
(macOS). Simulated here by hiding the module (sys.modules['resource'] = None, then a reload of
grader.execute.sandbox) or by patching the platform; a real notebook then runs through the executor."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import grader.execute.sandbox as sandbox_module


@pytest.fixture
def no_resource(monkeypatch):
    """grader.execute.sandbox as it loads where `import resource` fails; restored afterwards."""
    monkeypatch.setitem(sys.modules, "resource", None)
    module = importlib.reload(sandbox_module)
    assert module.resource is None
    yield module
    monkeypatch.undo()
    importlib.reload(sandbox_module)
    assert sandbox_module.resource is not None


def test_without_resource_the_mode_is_timeout_only_and_said(no_resource, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delattr(os, "geteuid", raising=False)  # as on Windows: detect must not need it
    sandbox = no_resource.Sandbox.detect(no_resource.SandboxConfig())
    assert sandbox.mode == "timeout-only" and not sandbox.isolated and not sandbox.limited
    assert "timeouts still apply" in sandbox.message and "win32" in sandbox.message
    assert sandbox.kernel_prefix(100, chown=[]) == []  # the kernel starts directly: no launcher to exec
    assert no_resource.apply_limits(memory=1 << 30, cpu=10, fsize=1 << 20, nproc=10) == []


def test_off_linux_with_resource_the_mode_is_limits(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    sandbox = sandbox_module.Sandbox.detect(sandbox_module.SandboxConfig())
    assert sandbox.mode == "limits" and "darwin" in sandbox.message
    prefix = sandbox.kernel_prefix(100, chown=[])
    assert prefix[:3] == [sys.executable, "-m", "grader.execute.sandbox"] and "launch" in prefix
    sandbox_module.set_pdeathsig(parent=1)  # prctl is Linux's: a no-op (and no exit) elsewhere


def test_limits_a_platform_refuses_are_skipped_and_said(monkeypatch, capsys):
    """macOS refuses some rlimits (RLIMIT_AS among them on some versions): the launcher goes on without them."""
    resource = sandbox_module.resource
    real = resource.setrlimit
    set_ok = []

    def setrlimit(which, limits):
        if which == resource.RLIMIT_AS:
            raise ValueError("current limit exceeds maximum limit")
        set_ok.append(which)  # not applied: this is the test process

    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    refused = sandbox_module.apply_limits(memory=8 << 30, cpu=100, fsize=1 << 20, nproc=None)
    assert refused == ["RLIMIT_AS"] and resource.RLIMIT_CPU in set_ok and resource.RLIMIT_CORE in set_ok
    assert "RLIMIT_AS could not be set" in capsys.readouterr().err
    monkeypatch.setattr(resource, "setrlimit", real)


def _notebook(path: Path) -> Path:
    nb = new_notebook(cells=[
        new_code_cell("x = 6 * 7\nprint('answer', x)"),
        new_code_cell("try:\n    import resource\n    print('AS', resource.getrlimit(resource.RLIMIT_AS)[0])\n"
                      "except ImportError:\n    print('AS none')"),
        new_code_cell("import time\ntime.sleep(60)"),
        new_code_cell("print('after the slow cell')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, str(path))
    return path


def test_a_notebook_runs_without_resource_and_timeouts_still_apply(no_resource, tmp_path, monkeypatch):
    from grader.execute.executor import Executor
    from grader.intake.submission import Submission
    from grader.settings import Settings

    lines: list[str] = []
    settings = Settings(isolate=True, cell_timeout=4, timeout=120)
    cfg = settings.execute_config(hide=[tmp_path], log=lines.append)
    assert cfg.sandbox_mode == "timeout-only"
    assert len(lines) == 1 and "timeouts still apply" in lines[0]  # said once
    nb = _notebook(tmp_path / "tiny.ipynb")
    rec = Executor(cfg).run(Submission(id="tiny", source=str(nb), notebook=nb), tmp_path / "out")
    assert rec.limits["sandbox"] == "timeout-only"
    executed = nbformat.read(tmp_path / "out" / "executed.ipynb", as_version=4)
    text = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in executed.cells]
    assert "answer 42" in text[0]
    # no rlimits were set: the kernel's address space is this process's (unlimited), not --memory's 8 GB
    assert f"AS {_address_space_limit()}" in text[1]
    slow = next(c for c in rec.cells if c.index == 2)
    assert rec.status == "timeout" and f"cell In [{slow.execution_count}]" in rec.reason  # the cell timeout still applies
    assert slow.timed_out and slow.seconds < 30
    assert "after the slow cell" in text[3]  # the run goes on after a timed-out cell


def _address_space_limit() -> int:
    """RLIMIT_AS of a process started from here (this one has `resource` hidden)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
                         capture_output=True, text=True, check=True).stdout
    return int(out)
