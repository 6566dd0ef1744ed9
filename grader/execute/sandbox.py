"""Containment of the student's kernel: resource limits, an unprivileged user, no network, private /tmp.

Three modes, chosen once per run (`Sandbox.detect`):

  isolated  (the grader runs as root and Linux namespaces work)
            unshare --net --pid --mount: no network (talk to the kernel over unix sockets, jupyter's
            `ipc` transport), its own /proc (it cannot see or signal other processes), private tmpfs
            over /tmp, /var/tmp and /dev/shm, the grader's output and input folders hidden; then the
            kernel drops to an unprivileged user (nobody) whose only writable place is its working dir.
            The whole process tree dies with the kernel (it is PID 1 of its namespace).
  limits    (otherwise) resource limits only; said once in the run log.
  timeout-only  (no `resource` module: Windows) no rlimits, no launcher: the kernel is started
            directly; the executor's cell and notebook timeouts still apply. Said once in the run log.

Both limits-setting modes set rlimits on the kernel: address space, CPU time, file size, processes
(Linux only: elsewhere the count is per user and a laptop runs hundreds), no core dumps. A limit the
platform refuses (macOS does not support every one) is skipped with a line on the kernel's stderr.

The launcher half runs as `python -m grader.execute.sandbox launch ... -- KERNEL CMD`: it applies the
mounts, rlimits and user switch, then execs the kernel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no rlimits; Sandbox.detect picks "timeout-only"
    resource = None

GB = 1 << 30
MB = 1 << 20
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
SANDBOX_ROOT = Path("/var/lib/qwen3-interp-grader")
# Colab's working directory. In isolated mode each kernel sees its own working dir mounted here (in its
# mount namespace), so notebook paths like /content/drive/MyDrive/tokens.gif work as on Colab; the
# grader creates the empty mount point once (it needs root, as isolated mode does).
COLAB_CONTENT = "/content"  # root-owned home of workdirs and the kernel-readable HF cache


@dataclass
class SandboxConfig:
    memory_bytes: int | None = 8 * GB  # kernel address space (RLIMIT_AS); None: unlimited (CUDA needs that)
    cpu_seconds: int | None = None  # CPU time (RLIMIT_CPU); None: derived from the notebook budget
    file_bytes: int = 256 * MB  # largest file the kernel may write (RLIMIT_FSIZE)
    nproc: int = 256  # processes + threads of the kernel's user (RLIMIT_NPROC; not enforced for root)
    isolate: bool = True  # use the isolated mode when possible
    uids: tuple[int, int] = (61000, 61999)  # one unprivileged uid per running kernel (no passwd entry needed)
    gid: int = 65534  # nogroup
    tmpfs_size: str = "512m"  # size of the private /tmp
    hide: list[str] = field(default_factory=list)  # folders the kernel must not see (output, inputs)

    def explain(self, ename: str | None, evalue: str | None) -> str | None:
        """A TA-readable phrase when a cell error came from one of these limits, else None."""
        text = f"{ename}: {evalue}"
        if "MemoryError" in (ename or "") or any(
                m in text for m in ("can't allocate memory", "Cannot allocate memory", "Unable to allocate")):
            limit = f"{self.memory_bytes / GB:g} GB" if self.memory_bytes else "the machine's memory"
            return f"ran out of memory (a student kernel may use at most {limit})"
        if "File too large" in text or "Errno 27" in text:
            return f"hit the file size limit ({self.file_bytes >> 20} MB per file)"
        if ename == "BlockingIOError" or "Resource temporarily unavailable" in text:
            return f"hit the process limit ({self.nproc} processes and threads)"
        if "Network is unreachable" in text or "Name or service not known" in text or "Temporary failure in name" in text:
            return "tried to use the network, which student kernels do not have"
        if ename == "PermissionError":
            return "was denied access to a file outside its working directory"
        return None


class UidLease:
    """An unprivileged uid of its own for one kernel, held with flock (released even on kill -9).

    A uid per kernel, not one shared `nobody`: process limits (RLIMIT_NPROC) count per uid, so a fork
    bomb in one notebook cannot starve another, and no kernel can read another's working dir.
    """

    def __init__(self, uids: tuple[int, int]):
        import fcntl

        lock_dir = SANDBOX_ROOT / "uids"
        lock_dir.mkdir(parents=True, exist_ok=True)
        for uid in range(uids[0], uids[1] + 1):
            fh = open(lock_dir / str(uid), "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            self.uid, self._fh = uid, fh
            return
        raise RuntimeError(f"all {uids[1] - uids[0] + 1} sandbox uids {uids[0]}-{uids[1]} are in use")

    def release(self) -> None:
        self._fh.close()


class Sandbox:
    """Decides the mode and builds the kernel's command prefix."""

    def __init__(self, cfg: SandboxConfig, mode: str, message: str):
        self.cfg, self.mode, self.message = cfg, mode, message

    @property
    def isolated(self) -> bool:
        return self.mode == "isolated"

    @property
    def transport(self) -> str:
        return "ipc" if self.isolated else "tcp"

    @property
    def limited(self) -> bool:
        """Whether the kernel gets rlimits (through the launcher)."""
        return self.mode != "timeout-only" and resource is not None

    @classmethod
    def detect(cls, cfg: SandboxConfig) -> "Sandbox":
        if resource is None:
            return cls(cfg, "timeout-only", f"this platform ({sys.platform}) has no resource limits: student kernels "
                       "run without memory, CPU-time or file-size limits; the cell and notebook timeouts still apply")
        if not cfg.isolate:
            return cls(cfg, "limits", "kernel isolation is off (--no-isolation): resource limits only")
        if not sys.platform.startswith("linux"):
            return cls(cfg, "limits", f"Linux namespaces are not available on {sys.platform}: student kernels get "
                       "resource limits only (no separate user, network or filesystem isolation)")
        if os.geteuid() != 0:
            return cls(cfg, "limits", "not running as root: student kernels get resource limits only "
                       "(no separate user, network or filesystem isolation)")
        if not shutil.which("unshare"):
            return cls(cfg, "limits", "`unshare` is missing: student kernels get resource limits only")
        try:
            lease = UidLease(cfg.uids)
        except (OSError, RuntimeError) as exc:
            return cls(cfg, "limits", f"no sandbox uid available ({exc}): resource limits only")
        sandbox = cls(cfg, "isolated", "")
        check = ("import sys, ipykernel, torch, transformers; open('/tmp/probe', 'w').write('ok'); "
                 f"assert sys.base_prefix == {sys.base_prefix!r}, 'the interpreter is not readable: ' + sys.base_prefix")
        probe = [*sandbox.kernel_prefix(60, chown=[], uid=lease.uid), sys.executable, "-c", check]
        try:
            proc = subprocess.run(probe, capture_output=True, text=True, timeout=180, cwd="/",
                                  env={**os.environ, "HOME": "/tmp", "USER": "student"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return cls(cfg, "limits", f"namespaces are not usable here ({exc}): resource limits only")
        finally:
            lease.release()
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            return cls(cfg, "limits", f"an isolated kernel could not start ({why}): resource limits only")
        try:
            Path(COLAB_CONTENT).mkdir(mode=0o755, exist_ok=True)  # the mount point of each kernel's own /content
        except OSError:
            pass  # then /content/... paths of Colab notebooks do not exist; relative paths still work
        return cls(cfg, "isolated", f"student kernels run as unprivileged uids {cfg.uids[0]}-{cfg.uids[1]}, "
                   "without network, with a private /tmp and their own process namespace")

    @staticmethod
    def _unshare() -> list[str]:
        return ["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child", "--"]

    def kernel_prefix(self, cpu_seconds: int, chown: list[Path], uid: int | None = None,
                      keep: list[Path] = (), content: Path | None = None) -> list[str]:
        """Command words in front of the kernel's own command line (none in timeout-only mode)."""
        cfg = self.cfg
        if not self.limited:
            return []
        launch = [sys.executable, "-m", "grader.execute.sandbox", "launch", "--fsize", str(cfg.file_bytes),
                  "--cpu", str(cfg.cpu_seconds or cpu_seconds), "--nproc", str(cfg.nproc)]
        if cfg.memory_bytes:
            launch += ["--memory", str(cfg.memory_bytes)]
        if not self.isolated:  # the worker starts `launch` itself
            return [*launch, "--parent", str(os.getpid()), "--"]
        launch += ["--uid", str(uid), "--gid", str(cfg.gid), "--tmpfs-size", cfg.tmpfs_size,
                   "--stage", str(self.stage_dir())]
        for p in PRIVATE_TMP:
            launch += ["--private", p]
        for p in [Path.home(), *cfg.hide]:  # the grader's home holds its caches (the golden among them)
            if Path(p).resolve() != Path("/"):
                launch += ["--hide", str(p)]
        for p in [*default_keep(), *keep]:
            launch += ["--keep", str(p)]
        for p in chown:
            launch += ["--chown", str(p)]
        if content is not None and Path(COLAB_CONTENT).is_dir():  # Colab's working dir, private to this kernel
            launch += ["--content", str(content)]
        pdeath = [sys.executable, "-m", "grader.execute.sandbox", "pdeath", "--parent", str(os.getpid()), "--"]
        return [*pdeath, *self._unshare(), *launch, "--"]

    @staticmethod
    def stage_dir() -> Path:
        stage = SANDBOX_ROOT / "stage"
        stage.mkdir(parents=True, exist_ok=True)
        return stage

    def workdir_base(self) -> Path | None:
        """Where isolated kernels' working dirs live: root-owned, traversable, not listable."""
        if not self.isolated:
            return None
        base = SANDBOX_ROOT / "work"
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(SANDBOX_ROOT, 0o711)
        os.chmod(base, 0o711)
        return base

    def give_to_kernel(self, path: Path, uid: int) -> None:
        """Make a working dir the kernel user's own (isolated mode)."""
        if self.isolated:
            os.chown(path, uid, self.cfg.gid)
            os.chmod(path, 0o700)


def default_keep() -> list[str]:
    """What the kernel needs to see even inside hidden folders: the interpreter and its packages."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), *project_packages()}
    return sorted(str(Path(p).resolve()) for p in paths if Path(p).exists())


def project_packages() -> list[str]:
    """This project's package folders (`grader`, `reference`, `fixtures`). With an editable install
    they live in the checkout, not in site-packages; the kernel sees them wherever the checkout is
    (under /tmp too), so a notebook that imports them behaves the same on every machine and is
    flagged `uses_reference`. Hidden folders inside them (e.g. fixtures/submissions when that is
    what is graded) stay hidden: see _isolate_filesystem."""
    import importlib.util

    found = []
    for name in ("grader", "reference", "fixtures", "miniature"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            found += list(spec.submodule_search_locations)
    return found


# ---------------------------------------------------------------------------------------------
# The launcher side (runs between `unshare` and the kernel).


def set_pdeathsig(parent: int | None = None) -> None:
    """SIGKILL this process when its parent dies. With `parent` (the pid that started it): if that
    parent died already, before this ran, exit now instead of living on re-parented. Used by the
    launcher below and by the grader's workers (grader/worker.py)."""
    if not sys.platform.startswith("linux"):  # prctl is Linux's; elsewhere the timeouts end a stray kernel
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os._exit(1)


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(f"mount {' '.join(args)} failed: {proc.stderr.strip()}")


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _isolate_filesystem(private: list[str], hide: list[str], keep: list[str], stage: str, size: str) -> None:
    """Inside the kernel's own mount namespace: private /tmp etc., hidden folders, needed paths kept.

    Paths to keep that lie inside a covered folder are bind-mounted to a staging area first, the
    folders are covered with tmpfs, then the kept paths are moved back to their places, read-only.
    """
    covered = [Path(p).resolve() for p in [*private, *hide] if Path(p).is_dir()]
    keeps = sorted({Path(k).resolve() for k in keep if Path(k).exists() and _under(Path(k).resolve(), covered)},
                   key=lambda p: len(p.parts))
    keeps = [k for i, k in enumerate(keeps) if not _under(k, keeps[:i])]  # outermost only
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", stage)
    staged = []
    for i, k in enumerate(keeps):
        target = Path(stage) / str(i)
        target.mkdir() if k.is_dir() else target.touch()
        _mount("--bind", str(k), str(target))
        staged.append((target, k))
    for path in sorted(covered, key=lambda p: len(p.parts)):
        if not path.is_dir():  # inside something covered already
            continue
        mode = "1777" if str(path) in {str(Path(p).resolve()) for p in private} else "0755"
        _mount("-t", "tmpfs", "-o", f"size={size if mode == '1777' else '1m'},mode={mode},nosuid,nodev", "tmpfs",
               str(path))
    for target, k in staged:
        if target.is_dir():
            k.mkdir(parents=True, exist_ok=True)
        else:
            k.parent.mkdir(parents=True, exist_ok=True)
            k.touch()
        _mount("--move", str(target), str(k))
        _mount("-o", "remount,bind,ro", str(k))
    kept = [k for _, k in staged]
    hidden = [Path(p).resolve() for p in hide if Path(p).is_dir()]
    for path in sorted(hidden, key=lambda p: len(p.parts)):  # hidden folders inside a kept one: cover again
        if _under(path, kept) and path not in kept:
            _mount("-t", "tmpfs", "-o", "size=1m,mode=0755,nosuid,nodev", "tmpfs", str(path))


def launch(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m grader.execute.sandbox launch")
    parser.add_argument("--memory", type=int)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--nproc", type=int)
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("--private", action="append", default=[], help="a private, writable tmpfs here")
    parser.add_argument("--tmpfs-size", default="512m")
    parser.add_argument("--hide", action="append", default=[], help="cover with an empty tmpfs")
    parser.add_argument("--keep", action="append", default=[], help="keep visible (read-only) inside covered dirs")
    parser.add_argument("--stage", help="an empty dir used while moving kept paths")
    parser.add_argument("--chown", action="append", default=[])
    parser.add_argument("--parent", type=int, help="the pid that started this (the worker), when it did directly")
    parser.add_argument("--content", help="bind this folder (the working dir) at /content, as on Colab")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    set_pdeathsig(args.parent)
    if args.private or args.hide:
        _isolate_filesystem(args.private, args.hide, args.keep, args.stage, args.tmpfs_size)
    if args.content:
        _mount("--bind", args.content, COLAB_CONTENT)
    if args.uid is not None:
        for path in args.chown:
            if os.path.exists(path):
                os.chown(path, args.uid, args.gid)
        conn = next((cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == "-f"), None)
        if conn and os.path.exists(conn):
            os.chown(conn, args.uid, args.gid)
    apply_limits(memory=args.memory, cpu=args.cpu, fsize=args.fsize, nproc=args.nproc)
    if args.uid is not None:
        os.setgroups([])
        os.setgid(args.gid)
        os.setuid(args.uid)
        set_pdeathsig()  # a change of credentials clears it
    os.execvp(cmd[0], cmd)


def apply_limits(memory: int | None, cpu: int | None, fsize: int | None, nproc: int | None) -> list[str]:
    """Set this process's rlimits (inherited by what it execs); returns the names of those the platform
    refused, each also said on stderr. Nothing without the `resource` module."""
    if resource is None:
        return []
    limits = [("RLIMIT_CORE", 0)]
    if memory:
        limits.append(("RLIMIT_AS", memory))
    if cpu:
        limits.append(("RLIMIT_CPU", cpu))
    if fsize:
        limits.append(("RLIMIT_FSIZE", fsize))
    if nproc and sys.platform.startswith("linux"):  # per user elsewhere (macOS): a laptop runs hundreds
        limits.append(("RLIMIT_NPROC", nproc))
    refused = []
    for name, value in limits:
        which = getattr(resource, name, None)
        try:
            if which is None:
                raise ValueError("not defined on this platform")
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY and value > hard:
                value = hard  # cannot raise a hard limit; the lower one holds anyway
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError) as exc:
            refused.append(name)
            print(f"grader sandbox: {name} could not be set here ({exc}); the kernel runs without it",
                  file=sys.stderr)
    return refused


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "pdeath":  # die with the parent (the grader's worker), then become the command
        rest = argv[1:]
        parent = None
        if rest[:1] == ["--parent"]:
            parent, rest = int(rest[1]), rest[2:]
        rest = rest[1:] if rest and rest[0] == "--" else rest
        set_pdeathsig(parent)
        os.execvp(rest[0], rest)
    if argv and argv[0] == "launch":
        launch(argv[1:])
    sys.exit("usage: python -m grader.execute.sandbox {pdeath|launch} ... -- COMMAND")


if __name__ == "__main__":
    main()
