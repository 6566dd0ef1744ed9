"""What a grading run was asked to do, as plain values: Settings, and the execution settings built from it.

The CLI turns arguments into Settings; nothing downstream sees argparse (the `type=` functions of
the options that are not Settings live here, shared by `grade` and `grade-check`). `Settings.validate` checks
every value (the rubric file and its [late] table included) before any work starts, and raises
UsageError naming each bad one. `Settings.execute_config` decides the sandbox mode once for the whole
run (and says it once); the result crosses to worker processes as JSON.

Reads the rubric file (to validate it). Writes OUT/grading.json (`RunRecord`): the grader's version, the
Canvas column, the rubric and the Settings of a `grade` run, written before grading starts, so later
verbs (`grade summarize`, `grade manual --import`, `grade --resume`) reuse the class-output settings.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from grader.execute.config import ExecuteConfig
from grader.spec.pack import DEFAULT_LIMITS, DEFAULT_PACK

TINY = "tiny"
RUN_RECORD = "grading.json"  # OUT/grading.json, see RunRecord
# The distributions this code ships in: the grader, and the students' self-check kit (grader/run/kit.py).
DISTRIBUTIONS = ("qwen3-interp-grader", "qwen3-interp-selfcheck")


def grader_version() -> str:
    """The installed version of the grader (or of the self-check kit), from the package metadata."""
    from importlib.metadata import PackageNotFoundError, version

    for name in DISTRIBUTIONS:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown (not installed)"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


# argparse `type=` functions of the options that are not Settings, shared by `grade` and `grade-check`: a bad
# value is an argparse error (exit 2, the option named, what was expected and found) before anything runs.

def parse_shard(text: str) -> tuple[int, int]:
    """'3/10' -> (3, 10): the 3rd (1-based) of 10 deterministic slices; ValueError says what was expected."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects K/N such as 2/8, got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard_arg(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def folder_arg(text: str) -> Path:
    """An output folder: one that exists, or one to create; not a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder (an existing one or one to create), found a file: {text}")
    return path


def port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = None
    if port is None or not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port number between 1 and 65535, found {text!r}")
    return port


def rubric_problems(path: Path | None, assignment: str | None = None) -> list[str]:
    """What is wrong with a rubric file: its checks and its [late] table, each as one sentence (empty: fine)."""
    from grader.judge.rubric.late import load_late_policy
    from grader.judge.rubric.config import RubricError, load_rubric

    problems = []
    for load in (load_rubric, load_late_policy):
        try:
            load(path, assignment)
        except RubricError as exc:
            problems.append(f"--rubric: {exc}")
            break  # an unreadable file says so once
    return problems


@dataclass
class Settings:
    assignment: str = DEFAULT_PACK  # the assignment pack: a shipped pack's name or a folder (grader/spec/pack.py)
    model: str = TINY  # "tiny" (the pack's miniature), the pack's model id (its real weights), a hub id, a folder
    device: str = "cpu"  # where the grader computes goldens: cpu or cuda
    workers: int = 1  # submissions graded at once
    cell_timeout: float = DEFAULT_LIMITS.cell_timeout  # seconds per cell
    timeout: float = DEFAULT_LIMITS.notebook_timeout  # seconds per notebook
    memory_gb: float | None = None  # address-space limit per kernel; None: the pack's for the miniature, none otherwise; 0: none
    isolate: bool = True  # unprivileged uid and namespaces for kernels, where the machine allows
    rubric: Path | None = None  # a rubric.toml overriding points or disabling checks
    report: bool = True  # write report.html per submission
    golden_cache: Path | None = None  # where goldens are cached (default: the project cache)
    full_render: bool = False  # draw the plotting cell's 3-D labels too (slower); default: frames with blank labels
    carry_forward: bool = True  # run Part 5 again on correct captures when Part 3's are wrong (grader/judge/carry.py)

    def validate(self) -> None:
        """Check every value before any work starts; UsageError lists each bad one, what was expected and
        what was found. More workers than CPUs is allowed (see `cpu_note`)."""
        from grader.errors import UsageError

        from grader.errors import PackError

        problems = []
        try:
            self.pack
        except PackError as exc:
            problems.append(f"--assignment: {exc}")
            raise UsageError(f"{problems[0]} (nothing was run or written)") from None
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            problems.append(f"--workers (submissions graded at once) must be a whole number >= 1, "
                            f"found {_shown(self.workers)}")
        for value, flag, what in ((self.timeout, "--timeout", "seconds per notebook"),
                                  (self.cell_timeout, "--cell-timeout", "seconds per cell")):
            if not _number(value) or value <= 0:
                problems.append(f"{flag} ({what}) must be a number > 0, found {_shown(value)}")
        if self.memory_gb is not None and (not _number(self.memory_gb) or self.memory_gb < 0):
            problems.append(f"--memory (GB of address space per kernel) must be a number >= 0 (0: no limit), "
                            f"found {_shown(self.memory_gb)}")
        problems += rubric_problems(self.rubric, self.assignment)
        if problems:
            raise UsageError(f"{problems[0]} (nothing was run or written)" if len(problems) == 1 else
                             "\n  ".join([f"{len(problems)} settings are not valid (nothing was run or written):",
                                          *problems]))

    def cpu_note(self) -> str | None:
        """One sentence when --workers exceeds the CPUs: allowed, but the kernels share them."""
        cpus = os.cpu_count() or 1
        if self.workers <= cpus:
            return None
        return (f"--workers {self.workers} is more than this machine's {cpus} CPU(s): the kernels share them, so "
                "each notebook runs slower and --cell-timeout/--timeout (wall-clock seconds) come sooner")

    @property
    def memory_bytes(self) -> int | None:
        from grader.execute.sandbox import GB

        default = self.pack.limits.memory_gb if self.model == TINY else 0
        memory = self.memory_gb if self.memory_gb is not None else default
        return int(memory * GB) or None

    @property
    def pack(self):
        """The assignment pack (loaded and validated once per process; PackError when it is not one)."""
        from grader.spec.pack import load_pack

        return load_pack(self.assignment)

    @property
    def real_weights(self) -> bool:
        """--model is the pack's own model id and the pack ships its trained weights (miniature/real.py)."""
        return self.model == self.pack.model.id and bool(self.pack.weights.gguf_package)

    def hf_home(self) -> Path | None:
        """The HF_HOME the kernels see: the miniature's offline cache, the pack's real weights laid out
        offline, or the user's own cache."""
        if self.model == TINY:
            from miniature.hf_cache import ensure_hf_home

            return ensure_hf_home(pack=self.pack)
        if self.real_weights:
            from miniature import real

            return real.hf_home(self.pack)
        env = os.environ.get("HF_HOME")
        return Path(env) if env else Path.home() / ".cache" / "huggingface"

    def execute_config(self, hide: list[Path] = (), log=print) -> ExecuteConfig:
        """Execution settings, with the sandbox mode decided once for the whole run (and said once)."""
        from grader.execute.sandbox import Sandbox, SandboxConfig
        from miniature.hf_cache import default_cache_root

        sandbox_cfg = SandboxConfig(memory_bytes=self.memory_bytes, isolate=self.isolate,
                                    hide=[str(p) for p in [*hide, default_cache_root()]])
        sandbox = Sandbox.detect(sandbox_cfg)
        log(f"sandbox: {sandbox.message}")
        return ExecuteConfig(hf_home=self.hf_home(), cell_timeout=self.cell_timeout, notebook_timeout=self.timeout,
                             output_cap_bytes=self.pack.limits.output_cap_bytes, num_layers=self.pack.n_layers,
                             threads=max(1, (os.cpu_count() or 1) // max(1, self.workers)),
                             sandbox=sandbox_cfg, sandbox_mode=sandbox.mode,
                             remap_cuda=not self.device.startswith("cuda"), fast_plot=not self.full_render)

    def model_warnings(self) -> list[str]:
        """What an instructor should hear about --model before grading with it."""
        import json

        pack = self.pack
        model_id = pack.model.id
        if self.model in (TINY, model_id):
            return []
        config = Path(self.model) / "config.json"
        if config.is_file():
            cfg, want = json.loads(config.read_text()), pack.model_config
            keys = ("architectures", pack.family.num_layers_key, pack.family.hidden_key)
            if all(cfg.get(k) == want.get(k) for k in keys):
                return []
            return [f"{self.model} is not {pack.model.name} (" + ", ".join(f"{k} {cfg.get(k)}" for k in keys)
                    + f"): students' notebooks load {model_id}, and their verdicts will be judged against this "
                    "model instead"]
        return [f"--model {self.model} is not the assignment's model ({model_id}): students' notebooks load "
                f"{model_id}, and their verdicts will be judged against {self.model} instead"]

    def golden_store(self):
        from grader.judge.golden import GoldenStore

        return GoldenStore(self.model, self.golden_cache, device=self.device, assignment=self.assignment)

    def load_rubric(self) -> dict:
        from grader.judge.rubric.config import load_rubric

        return load_rubric(self.rubric, self.assignment)

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("rubric", "golden_cache"):
            d[key] = str(d[key]) if d[key] else None
        return d

    @classmethod
    def from_json(cls, data: dict) -> "Settings":
        d = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for key in ("rubric", "golden_cache"):
            d[key] = Path(d[key]) if d.get(key) else None
        return cls(**d)


def recorded_assignment(out: Path) -> str | None:
    """The assignment pack the run in OUT graded with (OUT/grading.json), None when nothing is recorded."""
    try:
        record = RunRecord.read(out)
    except Exception:  # noqa: BLE001 - an unreadable record: the default pack, as before records existed
        return None
    return record.settings.get("assignment") if record else None


@dataclass
class RunRecord:
    """OUT/grading.json, written by `grade` before grading starts (atomically). Its shape is fixed: other
    verbs read it (`grade summarize`, `grade manual --import`, `grade --resume`)."""

    grader_version: str  # grader_version() of the run
    canvas_assignment: str  # the grades.csv column
    rubric: str | None  # absolute path of --rubric; None: the default rubric
    settings: dict  # Settings.to_json()

    @classmethod
    def of(cls, settings: Settings, canvas_assignment: str) -> "RunRecord":
        rubric = str(Path(settings.rubric).resolve()) if settings.rubric else None
        return cls(grader_version(), canvas_assignment, rubric, settings.to_json())

    def write(self, out: Path) -> Path:
        from grader.io import write_json

        path = Path(out) / RUN_RECORD
        write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, out: Path) -> "RunRecord | None":
        """The record in OUT (None when there is none); UsageError when it is not one."""
        import json

        from grader.errors import UsageError

        path = Path(out) / RUN_RECORD
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path} is not readable JSON ({exc}); delete it or pass --canvas-assignment and "
                             "--rubric") from None
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or set(data) != set(names) or not isinstance(data["canvas_assignment"], str) \
                or not isinstance(data["rubric"], (str, type(None))):
            raise UsageError(f"{path} is not a grading record (expected the keys {', '.join(names)} written by "
                             f"`grade`), found {str(data)[:200]}; delete it or pass --canvas-assignment and --rubric")
        return cls(**data)
