"""What executing one submission produced (execution.json), and atomic file writing."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Execution statuses, worst first. A submission that blew up is still a record with a reason.
STATUSES = (
    "no_notebook",  # nothing gradable was submitted
    "invalid_notebook",  # not a readable Jupyter notebook
    "tampered",  # the notebook disabled or replaced the grader's recording
    "extract_failed",  # the notebook ran but its results could not be read back
    "kernel_died",  # the kernel process ended (crash, os._exit, killed for memory)
    "timeout",  # a cell or the whole notebook ran past its time budget
    "cell_errors",  # ran to the end, some cells raised
    "ok",  # ran to the end without errors
    "grader_error",  # the grader itself failed on this submission (a bug to report)
)


@dataclass
class CellRecord:
    index: int  # position in the notebook (all cells, markdown included)
    execution_count: int | None
    seconds: float
    ename: str | None = None
    evalue: str | None = None
    traceback: list[str] | None = None
    timed_out: bool = False
    output_truncated_bytes: int = 0


@dataclass
class ExecutionRecord:
    submission_id: str
    status: str
    reason: str  # one sentence for a TA: what happened
    seconds: float = 0.0
    cells: list[CellRecord] = field(default_factory=list)
    hooks: list[dict] = field(default_factory=list)  # {module, module_type, kind, with_kwargs, removed, cell}
    forwards: list[dict] = field(default_factory=list)  # {n_tokens, input_ids_sha256, from_generate, ...}
    n_forwards: int = 0
    model: dict | None = None  # {class, name_or_path, num_layers, hidden_size, dtype, device}
    tokenizer: dict | None = None
    captures: dict | None = None  # {variable, layout, keys, shape, dtype, ...} of the primary candidate
    projections: dict | None = None
    captures_candidates: list[dict] = field(default_factory=list)
    projections_candidates: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)  # {name, bytes, kept}
    project_imports: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # anything else a TA should know
    probe_errors: list[str] = field(default_factory=list)
    limits: dict = field(default_factory=dict)  # the budgets this run used

    @property
    def cell_errors(self) -> list[CellRecord]:
        return [c for c in self.cells if c.ename]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ExecutionRecord":
        data = dict(data)
        data["cells"] = [CellRecord(**c) for c in data.get("cells", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=1, default=str) + "\n")


def read_execution(path: Path) -> ExecutionRecord:
    return ExecutionRecord.from_json(json.loads(Path(path).read_text()))
