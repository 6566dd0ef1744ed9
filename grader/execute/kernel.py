"""A fresh Jupyter kernel for one submission: start, run cells, run hidden code, interrupt, kill.

`KernelSession` is the one place a kernel's lifecycle lives (cleanup in `finally`, whatever
happened). Cells run through nbclient; outputs are capped per cell while they stream in, so a
notebook printing gigabytes cannot exhaust the grader's memory.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from grader.errors import StageError

KERNEL_NAME = "qgrader-python"


class KernelDiedError(StageError, RuntimeError):
    pass


class HiddenCodeError(StageError, RuntimeError):
    """The grader's own hidden code failed in the kernel (ename/evalue/traceback in the message)."""


@dataclass
class KernelConfig:
    cell_timeout: float = 300.0  # seconds one cell may run
    output_cap_bytes: int = 100_000  # output kept per cell in executed.ipynb
    startup_timeout: float = 120.0  # seconds for the kernel to answer after launch
    interrupt_grace: float = 10.0  # seconds an interrupted kernel gets to become idle before it is killed
    argv_prefix: list[str] = field(default_factory=list)  # sandbox wrapper in front of the kernel command
    transport: str = "tcp"  # "ipc" (unix sockets) where the kernel has no network
    connection_dir: str | None = None  # where the connection file and ipc sockets live (default: jupyter's)


class _SpecManager(KernelSpecManager):
    """Serves exactly one kernelspec: this interpreter's ipykernel, optionally behind a sandbox."""

    argv_prefix: list[str] = []

    def get_kernel_spec(self, kernel_name):
        argv = [*self.argv_prefix, sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        # interrupt by message, not by signal: a signal to the process group would reach the sandbox wrapper
        return KernelSpec(argv=argv, display_name="grader", language="python", resource_dir="", env={},
                          interrupt_mode="message")

    def find_kernel_specs(self):
        return {KERNEL_NAME: ""}


class CappedClient(NotebookClient):
    """nbclient with a per-cell output budget: past it, outputs are dropped and one notice is kept."""

    def __init__(self, *args, output_cap_bytes: int = 100_000, **kwargs):
        super().__init__(*args, **kwargs)
        self.output_cap_bytes = output_cap_bytes
        self.capped: dict[int, int] = {}  # cell index -> bytes dropped
        self._used: dict[int, int] = {}

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._used.get(cell_index, 0)
        if used + size > self.output_cap_bytes:
            if cell_index not in self.capped:
                outs.append(nbformat.v4.new_output(
                    "stream", name="stderr",
                    text=f"\n[grader: output of this cell truncated after {self.output_cap_bytes} bytes]\n"))
            self.capped[cell_index] = self.capped.get(cell_index, 0) + size
            return None
        self._used[cell_index] = used + size
        return super().output(outs, msg, display_id, cell_index)


@dataclass
class CellOutcome:
    index: int
    seconds: float
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] | None = None
    timed_out: bool = False


class KernelSession:
    """Context manager around one kernel: `with KernelSession(nb, cwd, env, cfg) as k: k.run_cell(i)`."""

    def __init__(self, nb: nbformat.NotebookNode, cwd: Path, env: dict[str, str], cfg: KernelConfig):
        self.nb, self.cwd, self.env, self.cfg = nb, Path(cwd), env, cfg
        spec_manager = _SpecManager()
        spec_manager.argv_prefix = list(cfg.argv_prefix)
        self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=spec_manager, transport=cfg.transport)
        if cfg.connection_dir:
            self.km.connection_file = str(Path(cfg.connection_dir) / "kernel.json")
        if cfg.transport == "ipc":
            self.km.ip = str(Path(cfg.connection_dir or self.cwd) / "ipc")  # unix socket path prefix
        self.client = CappedClient(
            nb, km=self.km, timeout=int(cfg.cell_timeout), allow_errors=True, interrupt_on_timeout=False,
            startup_timeout=int(cfg.startup_timeout), record_timing=False, output_cap_bytes=cfg.output_cap_bytes,
            shutdown_kernel="immediate",
        )
        self._ctx = None
        self.dead = False

    def __enter__(self) -> "KernelSession":
        self._ctx = self.client.setup_kernel(env=self.env, cwd=str(self.cwd))
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._ctx is not None:
                self._ctx.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - the kernel may already be gone
            pass
        finally:
            self.kill()

    @property
    def alive(self) -> bool:
        try:
            return not self.dead and self.km.has_kernel and bool(run_sync(self.km.is_alive)())
        except Exception:  # noqa: BLE001
            return False

    def exit_description(self) -> str:
        """How the kernel process ended, in words: 'was killed by SIGKILL', 'exited with code 1'."""
        import signal

        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = None
        for _ in range(20):  # the process may take a moment to be reaped
            code = proc.poll() if proc is not None else None
            if code is not None:
                break
            time.sleep(0.1)
        if code is None:
            return "stopped responding"
        if code < 0:
            name = signal.Signals(-code).name
            why = {"SIGKILL": " (killed from outside, e.g. for memory)", "SIGSEGV": " (a segmentation fault)",
                   "SIGXCPU": " (it used up its CPU-time limit)", "SIGABRT": " (it aborted)"}.get(name, "")
            return f"was killed by {name}{why}"
        return f"exited with code {code}" + (" (os._exit() or a crash in native code)" if code else "")

    def kill(self) -> None:
        """Kill the kernel's whole process group, whatever state it is in."""
        try:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001
            pass
        try:
            run_sync(self.km.cleanup_resources)()
        except Exception:  # noqa: BLE001
            pass

    def run_cell(self, index: int, timeout: float) -> CellOutcome:
        cell = self.nb.cells[index]
        self.client.timeout = max(1, int(timeout))
        start = time.monotonic()
        try:
            self.client.execute_cell(cell, index)
        except CellTimeoutError:
            outcome = CellOutcome(index, time.monotonic() - start, "CellTimeoutError",
                                  f"the cell ran past {int(timeout)} s", timed_out=True)
            self._recover_from_timeout()
            return outcome
        except DeadKernelError as exc:
            self.dead = True
            raise KernelDiedError(f"the kernel died while running cell {index}") from exc
        seconds = time.monotonic() - start
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return CellOutcome(index, seconds, out.get("ename"), out.get("evalue"), list(out.get("traceback", [])))
        return CellOutcome(index, seconds)

    def _recover_from_timeout(self) -> None:
        """Interrupt; if the kernel does not come back within the grace period, kill it."""
        try:
            run_sync(self.km.interrupt_kernel)()
            self.run_hidden("pass", timeout=self.cfg.interrupt_grace)
        except Exception:  # noqa: BLE001 - unresponsive or dead: kill it
            self.kill()
            self.dead = True

    def run_hidden(self, code: str, timeout: float) -> dict:
        """Run grader code silently (no outputs, no history, no execution count); return the reply content."""
        if self.dead:
            raise KernelDiedError("the kernel is not running")
        return run_sync(self._async_run_hidden)(code, timeout)

    async def _async_run_hidden(self, code: str, timeout: float) -> dict:
        kc = self.client.kc
        msg_id = kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the grader's hidden code did not finish within {timeout:.0f} s")
            try:
                reply = await ensure_async(kc.get_shell_msg(timeout=min(1.0, remaining)))
            except Exception:  # noqa: BLE001 - queue.Empty
                if not await ensure_async(self.km.is_alive()):
                    self.dead = True
                    raise KernelDiedError("the kernel died while running the grader's hidden code") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                content = reply["content"]
                if content.get("status") == "error":
                    raise HiddenCodeError(f"{content.get('ename')}: {content.get('evalue')}")
                return content
