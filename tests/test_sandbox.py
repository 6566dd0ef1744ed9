"""The isolated sandbox's view of the filesystem and its parent-death handling, without a kernel.

These run `python` through the same command prefix a student kernel gets. They need what isolated
mode needs (root, `unshare`); elsewhere they are skipped, as the grader itself falls back to limits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.execute.sandbox import Sandbox, SandboxConfig, UidLease


@pytest.fixture
def isolated():
    sandbox = Sandbox.detect(SandboxConfig())
    if not sandbox.isolated:
        pytest.skip(f"isolated mode is not available here: {sandbox.message}")
    return sandbox


def _run_inside(sandbox: Sandbox, code: str, keep: list[Path]) -> subprocess.CompletedProcess:
    lease = UidLease(sandbox.cfg.uids)
    try:
        prefix = sandbox.kernel_prefix(60, chown=[], uid=lease.uid, keep=keep)
        return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              cwd="/", env={**os.environ, "HOME": "/tmp"})
    finally:
        lease.release()


def test_kept_folder_under_private_tmp_is_visible_but_hidden_folders_inside_it_stay_hidden(isolated, tmp_path):
    """A checkout under /tmp (editable install): its packages stay importable inside the sandbox,
    while the grader's output folder and the submissions inside that checkout stay hidden."""
    checkout = tmp_path / "checkout"
    (checkout / "pkg" / "submissions").mkdir(parents=True)
    (checkout / "pkg" / "code.py").write_text("VALUE = 42\n")
    (checkout / "pkg" / "submissions" / "other_student.ipynb").write_text("{}")
    (checkout / "grading").mkdir()
    (checkout / "grading" / "results.json").write_text("{}")
    for path in [tmp_path, checkout, checkout / "pkg", checkout / "grading"]:
        path.chmod(0o755)
    sandbox = Sandbox(SandboxConfig(hide=[str(checkout / "grading"), str(checkout / "pkg" / "submissions")]),
                      "isolated", "")
    code = (f"import os, sys; sys.path.insert(0, {str(checkout / 'pkg')!r}); import code as c; "
            f"print('value', c.VALUE); "
            f"print('submissions', os.listdir({str(checkout / 'pkg' / 'submissions')!r})); "
            f"print('grading', os.path.exists({str(checkout / 'grading' / 'results.json')!r})); "
            "import reference, grader, fixtures; print('project importable')")
    proc = _run_inside(sandbox, code, keep=[checkout / "pkg"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "value 42" in proc.stdout
    assert "submissions []" in proc.stdout, "a hidden folder inside a kept one must stay hidden"
    assert "grading False" in proc.stdout
    assert "project importable" in proc.stdout
    assert (checkout / "pkg" / "submissions" / "other_student.ipynb").exists()  # untouched outside


def test_sandboxed_process_dies_when_its_starter_died_before_it_could_arm_the_signal(isolated):
    """`pdeath --parent PID`: started by a process that is gone already, it exits at once instead of
    living on re-parented (the race a kill -9 of a worker that is starting a kernel can hit)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader.execute.sandbox", "pdeath", "--parent", str(gone.pid), "--",
                           "sleep", "30"], timeout=60)
    assert proc.returncode == 1
    assert time.monotonic() - t0 < 20
