"""The carried-forward run: the student's notebook again, in a fresh kernel, with correct captures injected.

    out/<id>/carry/  execution.json, executed.ipynb, extracted.npz, files/, carry.json

What it runs is decided in the grader process (grader/judge/carry.py builds the CarryPlan); this module
only executes it, with the ordinary Executor (same sandbox, probe, Colab shim, fast plotting, limits):

* before the first code cell after `plan.inject_after`, hidden: grader/execute/carry_kernel.py `inject`
  puts `arrays` (the reference's resid_pre of every layer, [N, d] float32) into `plan.variable`, in
  the student's own container and form, and removes the student's hooks;
* the provided plotting cell, when the student left it unchanged (`plan.plot_cell`), is not run:
  `dry_plot` reads what it would read, so the grader knows the frames it would write;
* after extraction, `report` writes what inject and dry_plot found to carry.json.

The arrays reach the kernel as a dot-file in its working directory, deleted once read. They are the
answer to Part 3 only (never projections), and this run is used only to credit Part 5.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from grader.execute import carry_kernel
from grader.execute.config import ExecuteConfig
from grader.execute.executor import Executor, hidden_call
from grader.execute.kernel import HiddenCodeError, KernelSession
from grader.execute.records import ExecutionRecord
from grader.intake.submission import Submission
from grader.io import SubmissionDir, write_json

CARRY_SOURCE = Path(carry_kernel.__file__).read_text()
ARRAYS_FILE = ".grader-carry.npz"  # in the kernel's working directory, removed by inject


@dataclass
class CarryPlan:
    """What the carried-forward run does (JSON round trip: it is written to carry.json)."""

    variable: str  # the student's captures variable
    inject_after: int  # notebook cell index of the student's Part 4 forward
    fallback: dict = field(default_factory=dict)  # {"layout": "dict"|"list", "form": {...}} when the variable is empty
    plot_cell: int | None = None  # the provided plotting cell, left unchanged: not run, read by dry_plot
    plot_variable: str | None = None  # the name it is fed (`projected_values = NAME[layer_idx]`)
    tokens: str = "prompt"  # "prompt" (the assignment's ids) or "student_prompt"
    dtype: str = "float32"
    how_chosen: str = ""  # how the variable was found, in words

    def to_json(self) -> dict:
        return asdict(self)


class CarryExecutor(Executor):
    """An Executor that injects the correct captures after `plan.inject_after` and skips the provided plot."""

    def __init__(self, cfg: ExecuteConfig, plan: CarryPlan, arrays: list[np.ndarray]):
        super().__init__(cfg)
        self.plan, self.arrays = plan, arrays
        self.nonce = secrets.token_hex(8)
        self.injected = False
        self.kernel_info: dict = {}
        self._npz: Path | None = None

    def _config(self, **extra) -> dict:
        return {"nonce": self.nonce, **extra}

    def _execute(self, sub: Submission, nb, workdir, out_dir: Path, rec: ExecutionRecord) -> None:
        self._npz = workdir.path / ARRAYS_FILE
        np.savez(self._npz, **{f"layer_{i}": np.asarray(a, np.float32) for i, a in enumerate(self.arrays)})
        super()._execute(sub, nb, workdir, out_dir, rec)

    def _before_cell(self, kernel: KernelSession, index: int, cell, rec: ExecutionRecord) -> bool:
        if not self.injected and index > self.plan.inject_after:
            self._inject(kernel, rec)
        if index == self.plan.plot_cell and self.plan.plot_variable:
            self._hidden(kernel, rec, "dry_plot", self._config(variable=self.plan.plot_variable))
            return False
        return True

    def _inject(self, kernel: KernelSession, rec: ExecutionRecord) -> None:
        self.injected = True
        cfg = self._config(variable=self.plan.variable, npz=str(self._npz), n_layers=len(self.arrays),
                           fallback=self.plan.fallback)
        self._hidden(kernel, rec, "inject", cfg)

    def _hidden(self, kernel: KernelSession, rec: ExecutionRecord, function: str, cfg: dict) -> None:
        try:
            kernel.run_hidden(hidden_call(CARRY_SOURCE, function, cfg), timeout=self.cfg.probe_timeout)
        except HiddenCodeError as exc:
            self.kernel_info.setdefault("errors", []).append(f"{function}: {exc}")
            rec.notes.append(f"carry-forward {function} failed: {exc}")

    def _extract(self, kernel: KernelSession, probe_cfg: dict, workdir, out_dir: Path, rec: ExecutionRecord) -> None:
        super()._extract(kernel, probe_cfg, workdir, out_dir, rec)
        if not kernel.alive:
            return
        path = SubmissionDir(workdir.probe_out).carry_info
        try:
            workdir.probe_out.mkdir(exist_ok=True)
            kernel.run_hidden(hidden_call(CARRY_SOURCE, "report", self._config(out=str(path))),
                              timeout=self.cfg.probe_timeout)
            found = json.loads(path.read_text())
        except (HiddenCodeError, TimeoutError, OSError, ValueError) as exc:
            self.kernel_info.setdefault("errors", []).append(f"report: {exc}")
            return
        errors = self.kernel_info.get("errors", []) + list(found.get("errors") or [])
        self.kernel_info.update(found, errors=errors)


def run_carried(sub: Submission, out_dir: Path, cfg: ExecuteConfig, plan: CarryPlan,
                arrays: list[np.ndarray]) -> tuple[ExecutionRecord, dict]:
    """Execute the carried-forward run into out_dir/carry; (its record, what the kernel-side code found).
    A tokens.gif the student attached is left out: the GIF judged here is the one this run makes."""
    carry_dir = SubmissionDir(out_dir).carry
    shutil.rmtree(carry_dir, ignore_errors=True)  # nothing of an earlier, interrupted run is judged
    carried = replace(sub, attachments=[a for a in sub.attachments if Path(a).suffix.lower() != ".gif"])
    executor = CarryExecutor(cfg, plan, arrays)
    rec = executor.run(carried, carry_dir)
    shutil.rmtree(carry_dir / "submitted", ignore_errors=True)  # the submission is kept once, in out/<id>/submitted
    info = dict(executor.kernel_info, plan=plan.to_json())
    write_json(SubmissionDir(carry_dir).carry_info, info)
    return rec, info


def read_carried(out_dir: Path, plan: CarryPlan) -> tuple[ExecutionRecord, dict]:
    """The carried-forward run a batch already executed into out_dir/carry, for `grade rejudge` (no notebook runs).
    LookupError when there is none, or when it was run with another plan than the one judging makes now."""
    from grader.execute.records import read_execution

    carry_dir = SubmissionDir(out_dir).carry
    if not carry_dir.carry_info.is_file() or not carry_dir.execution.is_file():
        raise LookupError(f"no carried-forward run is stored in {carry_dir}")
    info = json.loads(carry_dir.carry_info.read_text())
    if info.get("plan") != plan.to_json():
        raise LookupError(f"the carried-forward run stored in {carry_dir} was made with another plan")
    return read_execution(carry_dir.execution), info
