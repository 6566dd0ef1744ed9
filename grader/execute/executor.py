"""Execute one submission in a fresh, instrumented kernel and read back what it captured.

    working dir (fresh temp) <- copies of the submission's attachments
    kernel: [hidden] probe.install, colab_env.install (+ fastplot.install unless --full-render)
            -> student cells, top to bottom, errors allowed -> [hidden] extract
    out/<id>/executed.ipynb, extracted.npz, execution.json (+ files/ with tokens.gif and images)

Nothing is judged here. Whatever happens, the result is an ExecutionRecord with a status.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path

import nbformat

from grader.execute import colab_env, extract, fastplot, probe
from grader.execute.config import ExecuteConfig, kernel_env
from grader.execute.kernel import CellOutcome, HiddenCodeError, KernelDiedError, KernelSession
from grader.execute.records import CellRecord, ExecutionRecord
from grader.execute.sandbox import Sandbox, UidLease
from grader.execute.workdir import Workdir, keep_submitted
from grader.intake.submission import Submission
from grader.io import SubmissionDir, write_atomic, write_json
from grader.status import Status

PROBE_SOURCE = Path(probe.__file__).read_text()
EXTRACT_SOURCE = Path(extract.__file__).read_text()
ENV_SOURCE = colab_env.kernel_source()
FASTPLOT_SOURCE = Path(fastplot.__file__).read_text()


def hidden_call(source: str, function: str, config: dict) -> str:
    """Code that runs one function of a kernel-side source in a private namespace (no student-visible names)."""
    return (
        "def __qgrader_call():\n"
        "    ns = {'__name__': '__qgrader_probe_source__'}\n"
        f"    exec(compile({source!r}, '<grader-probe>', 'exec'), ns)\n"
        f"    return ns[{function!r}]({config!r})\n"
        "try:\n"
        "    __qgrader_call()\n"
        "finally:\n"
        "    del __qgrader_call\n"
    )


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read any nbformat version as v4; raise ValueError with a reason a TA understands."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{path.name} is a directory, not a notebook file") from None
    if not raw.strip():
        raise ValueError(f"{path.name} is empty (0 bytes of notebook JSON)")
    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} is not a Jupyter notebook: not valid JSON ({exc.__class__.__name__}: "
                         f"{str(exc)[:120]})") from None
    try:
        nb = nbformat.reads(raw.decode(), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several types
        raise ValueError(f"{path.name} is JSON but not a valid Jupyter notebook: {str(exc).splitlines()[0][:200]}") from None
    return nb


def no_code_reason(nb: nbformat.NotebookNode) -> str:
    """Why a notebook without code ran nothing: 'the notebook has no cells' or what its cells hold."""
    if not nb.cells:
        return "the notebook has no cells: nothing ran"
    kinds = Counter("empty code" if cell.cell_type == "code" else cell.cell_type for cell in nb.cells)
    held = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    return f"the notebook has no code cells ({len(nb.cells)} cell(s): {held}): nothing ran"


class Executor:
    """Runs submissions one at a time with one configuration."""

    def __init__(self, cfg: ExecuteConfig):
        self.cfg = cfg

    def run(self, sub: Submission, out_dir: Path) -> ExecutionRecord:
        t0 = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        limits = {"cell_timeout_s": self.cfg.cell_timeout, "notebook_timeout_s": self.cfg.notebook_timeout,
                  "output_cap_bytes": self.cfg.output_cap_bytes}
        if sub.problem or sub.notebook is None:
            status = Status.NO_NOTEBOOK if sub.notebook is None else Status.INVALID_NOTEBOOK
            rec = ExecutionRecord(sub.id, status, sub.problem or "no notebook was submitted", limits=limits,
                                  notes=list(sub.notes))
            return self._finish(rec, out_dir, t0)
        try:
            nb = read_notebook(sub.notebook)
        except ValueError as exc:
            return self._finish(ExecutionRecord(sub.id, Status.INVALID_NOTEBOOK, str(exc), limits=limits,
                                                notes=list(sub.notes)), out_dir, t0)
        keep_submitted(sub.notebook, sub.attachments, out_dir, self.cfg.max_kept_file_bytes)
        sandbox = Sandbox(self.cfg.sandbox, self.cfg.sandbox_mode, "")
        if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
            # Nothing to run; judged all the same, so its markdown answer and attached diagram reach the TA.
            rec = ExecutionRecord(sub.id, Status.EMPTY_NOTEBOOK, no_code_reason(nb), limits=limits,
                                  notes=list(sub.notes))
            try:
                with Workdir(sandbox, None) as workdir:  # holds only the attachments: kept as a run keeps them
                    workdir.stage(sub.attachments)
                    rec.files = workdir.collect(out_dir, self.cfg.max_kept_file_bytes, rec.notes)
            except OSError as exc:
                rec.notes.append(f"the attachments could not be kept: {exc}")
            write_atomic(SubmissionDir(out_dir).executed, nbformat.writes(nb))
            return self._finish(rec, out_dir, t0)
        limits.update(sandbox=sandbox.mode, memory_bytes=self.cfg.sandbox.memory_bytes,
                      file_bytes=self.cfg.sandbox.file_bytes, nproc=self.cfg.sandbox.nproc)
        lease = UidLease(self.cfg.sandbox.uids) if sandbox.isolated else None
        try:
            with Workdir(sandbox, lease.uid if lease else None, keep=self.cfg.keep_workdir) as workdir:
                rec = ExecutionRecord(sub.id, Status.OK, "", limits=limits, notes=list(sub.notes))
                self._execute(sub, nb, workdir, out_dir, rec)
        except Exception as exc:  # noqa: BLE001 - a grader bug still ends as a result
            rec = ExecutionRecord(sub.id, Status.GRADER_ERROR, f"the grader failed: {exc.__class__.__name__}: {exc}",
                                  limits=limits, notes=list(sub.notes) + [traceback.format_exc()[-2000:]])
        finally:
            if lease:
                lease.release()
        return self._finish(rec, out_dir, t0)

    def _finish(self, rec: ExecutionRecord, out_dir: Path, t0: float) -> ExecutionRecord:
        rec.seconds = round(time.monotonic() - t0, 2)
        write_json(SubmissionDir(out_dir).execution, rec.to_json())
        return rec

    def _kernel_session(self, nb, workdir: Workdir) -> KernelSession:
        cfg = self.cfg
        cpu = int((cfg.notebook_timeout + 2 * cfg.probe_timeout) * max(1, cfg.threads) + 120)
        prefix = workdir.sandbox.kernel_prefix(cpu, chown=[], uid=workdir.uid, keep=[cfg.hf_home] if cfg.hf_home else [],
                                               content=workdir.path)
        kcfg = replace(cfg.kernel, cell_timeout=cfg.cell_timeout, output_cap_bytes=cfg.output_cap_bytes,
                       argv_prefix=prefix, transport=workdir.sandbox.transport,
                       connection_dir=str(workdir.connection_dir))
        return KernelSession(nb, workdir.path, kernel_env(cfg, workdir.path), kcfg)

    def _execute(self, sub: Submission, nb, workdir: Workdir, out_dir: Path, rec: ExecutionRecord) -> None:
        workdir.stage(sub.attachments)
        probe_cfg = {"nonce": secrets.token_hex(8), "out_dir": str(workdir.probe_out),
                     "max_extract_bytes": self.cfg.max_extract_bytes, "num_layers": self.cfg.num_layers,
                     "seed": self.cfg.seed}
        with self._kernel_session(nb, workdir) as kernel:
            env_cfg = {"remap_cuda": self.cfg.remap_cuda, "workdir": str(workdir.path), "nonce": probe_cfg["nonce"]}
            try:
                kernel.run_hidden(hidden_call(PROBE_SOURCE, "install", probe_cfg), timeout=self.cfg.probe_timeout)
                kernel.run_hidden(hidden_call(ENV_SOURCE, "install", env_cfg), timeout=self.cfg.probe_timeout)
                if self.cfg.fast_plot:  # frames drawn with blank 3-D labels (grader/execute/fastplot.py)
                    kernel.run_hidden(hidden_call(FASTPLOT_SOURCE, "install", {"nonce": probe_cfg["nonce"]}),
                                      timeout=self.cfg.probe_timeout)
            except (HiddenCodeError, TimeoutError) as exc:
                rec.status = Status.GRADER_ERROR
                rec.reason = f"the grader's recorder could not be installed in the kernel ({exc}); not graded"
                return
            stopped = self._run_cells(kernel, nb, rec)
            if stopped:
                rec.status, rec.reason = stopped
            self._extract(kernel, probe_cfg, workdir, out_dir, rec)
        write_atomic(SubmissionDir(out_dir).executed, nbformat.writes(nb))
        rec.files = workdir.collect(out_dir, self.cfg.max_kept_file_bytes, rec.notes)
        self._conclude(rec)

    def _run_cells(self, kernel: KernelSession, nb, rec: ExecutionRecord) -> tuple[Status, str] | None:
        """Every code cell, top to bottom, errors allowed; (status, reason) when the run was stopped."""
        cfg = self.cfg
        budget_end = time.monotonic() + cfg.notebook_timeout
        stopped = None
        for cell in nb.cells:  # cells are named by the count this run gives them ("In [7]"), never the submission's
            if cell.cell_type == "code":
                cell.execution_count = None
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            remaining = budget_end - time.monotonic()
            if remaining <= 1:
                return Status.TIMEOUT, (f"stopped after {cfg.notebook_timeout:.0f} s (the whole-notebook budget) "
                                        f"before {rec.cell_name(index)}")
            try:
                if not self._before_cell(kernel, index, cell, rec):  # a subclass may skip a cell
                    continue
                kernel.run_hidden(probe.SET_CELL.format(m=probe.STATE_MODULE, i=index), timeout=30)
                outcome = kernel.run_cell(index, min(cfg.cell_timeout, remaining))
            except TimeoutError:  # busy with something an earlier cell left running
                kernel.kill()
                kernel.dead = True
                return Status.TIMEOUT, f"the kernel stopped responding before {rec.cell_name(index)} and was killed"
            except KernelDiedError:
                how = kernel.exit_description()
                rec.cells.append(CellRecord(index, cell.get("execution_count"), 0.0, "DeadKernelError",
                                            f"the kernel {how} while running this cell"))
                return Status.KERNEL_DIED, f"the kernel died in {rec.cell_name(index)}: it {how}"
            rec.cells.append(self._cell_record(outcome, cell, kernel))
            if outcome.timed_out:  # a cell past the cell limit: the run goes on, and says it timed out
                which = "the cell limit" if cfg.cell_timeout <= remaining else "the whole-notebook budget"
                stopped = (Status.TIMEOUT, f"stopped after {outcome.seconds:.0f} s in {rec.cell_name(index)} ({which})")
                if kernel.dead:
                    return Status.TIMEOUT, stopped[1] + "; the kernel did not respond to an interrupt and was killed"
                if which != "the cell limit":
                    return stopped
        return stopped

    def _before_cell(self, kernel: KernelSession, index: int, cell, rec: ExecutionRecord) -> bool:
        """Called before each code cell runs; False skips it (grader/execute/carry.py runs hidden code here)."""
        return True

    def _conclude(self, rec: ExecutionRecord) -> None:
        """The final status and reason: cell errors (naming a sandbox limit hit), or all fine; tampering wins."""
        if rec.status == Status.OK and rec.cell_errors:
            rec.status = Status.CELL_ERRORS
            first = rec.cell_errors[0]
            rec.reason = (f"{len(rec.cell_errors)} cell(s) raised an error; the first, {first.named}: "
                          f"{first.ename}: {(first.evalue or '')[:160]}")
            limits_hit = [f"{c.named} {why}" for c in rec.cell_errors
                          if (why := self.cfg.sandbox.explain(c.ename, c.evalue))]
            if limits_hit:
                rec.reason += "; " + "; ".join(limits_hit[:3])
        elif rec.status == Status.OK and not rec.reason:
            rec.reason = f"all {len(rec.cells)} code cells ran without errors"
        if rec.tampered:  # whatever else happened, the recorded data cannot be trusted
            rec.status = Status.TAMPERED
            rec.reason = "the notebook interfered with the grader's recording: " + "; ".join(rec.tampered)

    @staticmethod
    def _cell_record(outcome: CellOutcome, cell, kernel: KernelSession) -> CellRecord:
        return CellRecord(index=outcome.index, execution_count=cell.get("execution_count"),
                          seconds=round(outcome.seconds, 3), ename=outcome.ename, evalue=outcome.evalue,
                          traceback=outcome.traceback, timed_out=outcome.timed_out,
                          output_truncated_bytes=kernel.client.capped.get(outcome.index, 0))

    def _extract(self, kernel: KernelSession, probe_cfg: dict, workdir: Workdir, out_dir: Path,
                 rec: ExecutionRecord) -> None:
        probe_dir = workdir.probe_out
        shutil.rmtree(probe_dir, ignore_errors=True)  # nothing the student left there is trusted
        if not kernel.alive:
            rec.notes.append("captures could not be read: the kernel was not running after the last cell")
            return
        try:
            kernel.run_hidden(hidden_call(EXTRACT_SOURCE, "extract", probe_cfg), timeout=self.cfg.probe_timeout)
            data = json.loads((probe_dir / "probe.json").read_text())
        except (HiddenCodeError, TimeoutError, KernelDiedError, OSError, ValueError) as exc:
            if rec.status == Status.OK:
                rec.status = Status.EXTRACT_FAILED
                rec.reason = f"the notebook ran, but its results could not be read back: {exc}"
            else:
                rec.notes.append(f"results could not be read back: {exc}")
            return
        rec.take_probe(data, probe_cfg["nonce"])
        self._keep_arrays(SubmissionDir(probe_dir).extracted, out_dir, rec)

    def _keep_arrays(self, npz: Path, out_dir: Path, rec: ExecutionRecord) -> None:
        if not npz.is_file():
            return
        size = npz.stat().st_size
        if size > self.cfg.max_extract_bytes + (1 << 20):
            rec.notes.append(f"extracted arrays ({size} bytes) were over the limit and were not kept")
            return
        shutil.copyfile(npz, out_dir / ".extracted.npz.tmp")
        os.replace(out_dir / ".extracted.npz.tmp", SubmissionDir(out_dir).extracted)
