"""Execute one submission in a fresh, instrumented kernel and read back what it captured.

    working dir (fresh temp) <- copies of the submission's attachments
    kernel: [hidden] probe.install -> student cells, top to bottom, errors allowed -> [hidden] probe.extract
    out/<id>/executed.ipynb, extracted.npz, execution.json (+ files/ with tokens.gif and images)

Nothing is judged here. Whatever happens, the result is an ExecutionRecord with a status.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from grader.execute import probe
from grader.execute.kernel import CellOutcome, HiddenCodeError, KernelConfig, KernelDiedError, KernelSession
from grader.execute.records import CellRecord, ExecutionRecord, write_atomic, write_json
from grader.execute.sandbox import Sandbox, SandboxConfig, UidLease
from grader.intake.discovery import Submission, parse_canvas_name
from grader.spec.hashing import sha256

PROBE_SOURCE = Path(probe.__file__).read_text()
PROBE_OUT = ".grader-probe"  # folder in the working dir where extraction writes
KEPT_FILE_SUFFIXES = {".gif", ".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp"}


@dataclass
class ExecuteConfig:
    hf_home: Path | None = None  # the HF cache the kernel sees (the miniature's by default)
    cell_timeout: float = 300.0  # seconds per cell
    notebook_timeout: float = 1200.0  # seconds for all student cells together
    output_cap_bytes: int = 100_000  # outputs kept per cell in executed.ipynb
    max_extract_bytes: int = 1 << 30  # captures/projections read back from the kernel
    max_kept_file_bytes: int = 20 << 20  # largest image/GIF copied out of the working dir
    threads: int = 1  # torch/OpenMP threads inside the kernel
    probe_timeout: float = 300.0  # seconds for the hidden install / extract steps
    kernel: KernelConfig = field(default_factory=KernelConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    sandbox_mode: str = "limits"  # "isolated" or "limits", decided once per run by Sandbox.detect
    extra_env: dict[str, str] = field(default_factory=dict)
    keep_workdir: bool = False  # for debugging


def kernel_env(cfg: ExecuteConfig, workdir: Path) -> dict[str, str]:
    """A small, explicit environment: no secrets of the grader's leak into student code."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    threads = str(max(1, cfg.threads))
    env.update({
        "HOME": str(workdir),
        "USER": "student",
        "LOGNAME": "student",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / ".config" / "matplotlib"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "TQDM_DISABLE": "1",
    })
    if cfg.hf_home:
        env["HF_HOME"] = str(cfg.hf_home)
    env.update(cfg.extra_env)
    return env


def _hidden_call(function: str, config: dict) -> str:
    """Code that runs one probe function from its source in a private namespace (no student-visible names)."""
    return (
        "def __qgrader_call():\n"
        "    ns = {'__name__': '__qgrader_probe_source__'}\n"
        f"    exec(compile({PROBE_SOURCE!r}, '<grader-probe>', 'exec'), ns)\n"
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


class Executor:
    """Runs submissions one at a time with one configuration."""

    def __init__(self, cfg: ExecuteConfig):
        self.cfg = cfg
        self._attached: dict[str, str] = {}  # file name in the working dir -> sha256, for attachments

    def run(self, sub: Submission, out_dir: Path) -> ExecutionRecord:
        t0 = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        limits = {"cell_timeout_s": self.cfg.cell_timeout, "notebook_timeout_s": self.cfg.notebook_timeout,
                  "output_cap_bytes": self.cfg.output_cap_bytes}
        if sub.problem or sub.notebook is None:
            status = "no_notebook" if sub.notebook is None else "invalid_notebook"
            rec = ExecutionRecord(sub.id, status, sub.problem or "no notebook was submitted", limits=limits,
                                  notes=list(sub.notes))
            return self._finish(rec, out_dir, t0)
        try:
            nb = read_notebook(sub.notebook)
        except ValueError as exc:
            return self._finish(ExecutionRecord(sub.id, "invalid_notebook", str(exc), limits=limits,
                                                notes=list(sub.notes)), out_dir, t0)
        if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
            rec = ExecutionRecord(sub.id, "ok", "the notebook has no code cells", limits=limits, notes=list(sub.notes))
            write_atomic(out_dir / "executed.ipynb", nbformat.writes(nb))
            return self._finish(rec, out_dir, t0)
        sandbox = Sandbox(self.cfg.sandbox, self.cfg.sandbox_mode, "")
        limits.update(sandbox=sandbox.mode, memory_bytes=self.cfg.sandbox.memory_bytes,
                      file_bytes=self.cfg.sandbox.file_bytes, nproc=self.cfg.sandbox.nproc)
        lease = UidLease(self.cfg.sandbox.uids) if sandbox.isolated else None
        workdir = Path(tempfile.mkdtemp(prefix="qgrader-", dir=sandbox.workdir_base()))
        try:
            rec = self._execute(sub, nb, workdir, out_dir, limits, sandbox, lease.uid if lease else None)
        except Exception as exc:  # noqa: BLE001 - a grader bug still ends as a result
            rec = ExecutionRecord(sub.id, "grader_error", f"the grader failed: {exc.__class__.__name__}: {exc}",
                                  limits=limits, notes=list(sub.notes) + [traceback.format_exc()[-2000:]])
        finally:
            if not self.cfg.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            if lease:
                lease.release()
        return self._finish(rec, out_dir, t0)

    def _finish(self, rec: ExecutionRecord, out_dir: Path, t0: float) -> ExecutionRecord:
        rec.seconds = round(time.monotonic() - t0, 2)
        write_json(out_dir / "execution.json", rec.to_json())
        return rec

    def _execute(self, sub: Submission, nb, workdir: Path, out_dir: Path, limits: dict, sandbox: Sandbox,
                 uid: int | None) -> ExecutionRecord:
        cfg = self.cfg
        self._attached = {}
        for f in sub.attachments:
            canvas = parse_canvas_name(f.name)
            target = workdir / (canvas.filename if canvas else f.name)
            shutil.copyfile(f, target)
            self._attached[target.name] = sha256(target)
        conn_dir = workdir / ".kernel"
        conn_dir.mkdir()
        if uid is not None:
            for path in [workdir, conn_dir, *workdir.iterdir()]:
                sandbox.give_to_kernel(path, uid) if path.is_dir() else os.chown(path, uid, cfg.sandbox.gid)
        cpu = int((cfg.notebook_timeout + 2 * cfg.probe_timeout) * max(1, cfg.threads) + 120)
        kcfg = replace(cfg.kernel, cell_timeout=cfg.cell_timeout, output_cap_bytes=cfg.output_cap_bytes,
                       argv_prefix=sandbox.kernel_prefix(cpu, chown=[], uid=uid,
                                                         keep=[cfg.hf_home] if cfg.hf_home else []),
                       transport=sandbox.transport,
                       connection_dir=str(conn_dir))
        nonce = secrets.token_hex(8)
        probe_cfg = {"nonce": nonce, "out_dir": str(workdir / PROBE_OUT), "max_extract_bytes": cfg.max_extract_bytes}
        rec = ExecutionRecord(sub.id, "ok", "", limits=limits, notes=list(sub.notes))
        budget_end = None
        with KernelSession(nb, workdir, kernel_env(cfg, workdir), kcfg) as kernel:
            try:
                kernel.run_hidden(_hidden_call("install", probe_cfg), timeout=cfg.probe_timeout)
            except (HiddenCodeError, TimeoutError) as exc:
                rec.status = "grader_error"
                rec.reason = f"the grader's recorder could not be installed in the kernel ({exc}); not graded"
                return rec
            budget_end = time.monotonic() + cfg.notebook_timeout
            stopped = None
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                remaining = budget_end - time.monotonic()
                if remaining <= 1:
                    stopped = ("timeout", f"stopped after {cfg.notebook_timeout:.0f} s (the whole-notebook budget) "
                               f"before cell {index}")
                    break
                try:
                    kernel.run_hidden(probe.SET_CELL.format(m=probe.STATE_MODULE, i=index), timeout=30)
                    outcome = kernel.run_cell(index, min(cfg.cell_timeout, remaining))
                except TimeoutError:  # busy with something an earlier cell left running
                    kernel.kill()
                    kernel.dead = True
                    stopped = ("timeout", f"the kernel stopped responding before cell {index} and was killed")
                    break
                except KernelDiedError:
                    how = kernel.exit_description()
                    rec.cells.append(CellRecord(index, cell.get("execution_count"), 0.0, "DeadKernelError",
                                                f"the kernel {how} while running this cell"))
                    stopped = ("kernel_died", f"the kernel died in cell {index}: it {how}")
                    break
                rec.cells.append(self._cell_record(outcome, cell, kernel))
                if outcome.timed_out:
                    which = "the cell limit" if cfg.cell_timeout <= remaining else "the whole-notebook budget"
                    stopped = ("timeout", f"stopped after {outcome.seconds:.0f} s in cell {index} ({which})")
                    if kernel.dead:
                        stopped = ("timeout", stopped[1] + "; the kernel did not respond to an interrupt and was killed")
                        break
                    if which != "the cell limit":
                        break
            if stopped:
                rec.status, rec.reason = stopped
            self._extract(kernel, probe_cfg, workdir, out_dir, rec)
        write_atomic(out_dir / "executed.ipynb", nbformat.writes(nb))
        self._collect_files(workdir, out_dir, rec)
        if rec.status == "ok" and rec.cell_errors:
            rec.status = "cell_errors"
            first = rec.cell_errors[0]
            rec.reason = (f"{len(rec.cell_errors)} cell(s) raised an error; the first, cell {first.index}: "
                          f"{first.ename}: {(first.evalue or '')[:160]}")
            limits_hit = [f"cell {c.index} {why}" for c in rec.cell_errors if (why := self._limit_hit(c))]
            if limits_hit:
                rec.reason += "; " + "; ".join(limits_hit[:3])
        elif rec.status == "ok" and not rec.reason:
            rec.reason = f"all {len(rec.cells)} code cells ran without errors"
        if rec.tampered:  # whatever else happened, the recorded data cannot be trusted
            rec.status, rec.reason = "tampered", "the notebook interfered with the grader's recording: " + "; ".join(rec.tampered)
        return rec

    def _limit_hit(self, cell: CellRecord) -> str | None:
        """A TA-readable phrase when a cell error came from one of the sandbox's limits."""
        text = f"{cell.ename}: {cell.evalue}"
        sb = self.cfg.sandbox
        if "MemoryError" in (cell.ename or "") or any(
                m in text for m in ("can't allocate memory", "Cannot allocate memory", "Unable to allocate")):
            limit = f"{sb.memory_bytes / (1 << 30):g} GB" if sb.memory_bytes else "the machine's memory"
            return f"ran out of memory (a student kernel may use at most {limit})"
        if "File too large" in text or "Errno 27" in text:
            return f"hit the file size limit ({sb.file_bytes >> 20} MB per file)"
        if cell.ename == "BlockingIOError" or "Resource temporarily unavailable" in text:
            return f"hit the process limit ({sb.nproc} processes and threads)"
        if "Network is unreachable" in text or "Name or service not known" in text or "Temporary failure in name" in text:
            return "tried to use the network, which student kernels do not have"
        if cell.ename == "PermissionError":
            return "was denied access to a file outside its working directory"
        return None

    @staticmethod
    def _cell_record(outcome: CellOutcome, cell, kernel: KernelSession) -> CellRecord:
        return CellRecord(index=outcome.index, execution_count=cell.get("execution_count"),
                          seconds=round(outcome.seconds, 3), ename=outcome.ename, evalue=outcome.evalue,
                          traceback=outcome.traceback, timed_out=outcome.timed_out,
                          output_truncated_bytes=kernel.client.capped.get(outcome.index, 0))

    def _extract(self, kernel: KernelSession, probe_cfg: dict, workdir: Path, out_dir: Path,
                 rec: ExecutionRecord) -> None:
        probe_dir = workdir / PROBE_OUT
        shutil.rmtree(probe_dir, ignore_errors=True)  # nothing the student left there is trusted
        if not kernel.alive:
            rec.notes.append("captures could not be read: the kernel was not running after the last cell")
            return
        try:
            kernel.run_hidden(_hidden_call("extract", probe_cfg), timeout=self.cfg.probe_timeout)
            data = json.loads((probe_dir / "probe.json").read_text())
        except (HiddenCodeError, TimeoutError, KernelDiedError, OSError, ValueError) as exc:
            if rec.status in ("ok",):
                rec.status = "extract_failed"
                rec.reason = f"the notebook ran, but its results could not be read back: {exc}"
            else:
                rec.notes.append(f"results could not be read back: {exc}")
            return
        if data.get("nonce") != probe_cfg["nonce"]:
            rec.tampered += data.get("tampered") or ["the grader's recording was replaced"]
        else:
            rec.tampered += data.get("tampered", [])
        for key in ("hooks", "forwards", "model", "tokenizer", "captures", "projections"):
            setattr(rec, key, data.get(key))
        rec.hooks = rec.hooks or []
        rec.forwards = rec.forwards or []
        rec.n_forwards = data.get("n_forwards", 0)
        rec.captures_candidates = data.get("captures_candidates", [])
        rec.projections_candidates = data.get("projections_candidates", [])
        rec.project_imports = sorted(set(data.get("project_imports", [])) | set(data.get("project_modules_loaded", [])))
        rec.probe_errors = data.get("errors", [])
        npz = probe_dir / "extracted.npz"
        if npz.is_file():
            size = npz.stat().st_size
            if size > self.cfg.max_extract_bytes + (1 << 20):
                rec.notes.append(f"extracted arrays ({size} bytes) were over the limit and were not kept")
            else:
                shutil.copyfile(npz, out_dir / ".extracted.npz.tmp")
                os.replace(out_dir / ".extracted.npz.tmp", out_dir / "extracted.npz")

    def _collect_files(self, workdir: Path, out_dir: Path, rec: ExecutionRecord) -> None:
        """List what the notebook left in its working dir; keep images and GIFs (size-capped)."""
        files_dir = out_dir / "files"
        shutil.rmtree(files_dir, ignore_errors=True)
        entries = []
        for path in sorted(workdir.iterdir()):
            if path.name.startswith(".") or path.name == PROBE_OUT or path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            keep = path.suffix.lower() in KEPT_FILE_SUFFIXES and size <= self.cfg.max_kept_file_bytes \
                and not path.name.startswith("frame_")
            if keep:
                files_dir.mkdir(exist_ok=True)
                shutil.copyfile(path, files_dir / path.name)
            # only a file named like an attachment is hashed (the working dir may hold 256 MB files)
            attached = path.name in self._attached and self._attached[path.name] == sha256(path)
            origin = "attachment" if attached else "notebook"
            entries.append({"name": path.name, "bytes": size, "kept": keep, "origin": origin})
            if len(entries) >= 500:
                rec.notes.append("more than 500 files in the working directory; the rest are not listed")
                break
        rec.files = entries
