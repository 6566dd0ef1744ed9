"""What executing one submission produced: execution.json, read and written as an ExecutionRecord."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.status import Status


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

    @property
    def label(self) -> str:
        """How a student or TA finds this cell: "In [7]", the prompt the executed notebook shows."""
        return cell_label(self.execution_count, self.index)

    @property
    def named(self) -> str:
        """The label in a sentence: "cell In [7]" ("notebook cell 12" without a count)."""
        return f"cell {self.label}" if self.execution_count else self.label


def cell_label(execution_count: int | None, index: int) -> str:
    """"In [7]" (the execution count nbclient gave the cell in the grader's run: what executed.ipynb and the
    traceback's "Cell In[7]" show); "notebook cell 12" (0-based, markdown included) only for a cell that has
    no count. Programs keep using `index`."""
    return f"In [{execution_count}]" if execution_count else f"notebook cell {index}"


@dataclass
class ExecutionRecord:
    submission_id: str
    status: Status
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
    environment: dict = field(default_factory=dict)  # Colab/CUDA adaptations: {adaptations, counts, errors}

    @property
    def cell_errors(self) -> list[CellRecord]:
        return [c for c in self.cells if c.ename]

    def cell_name(self, index: int) -> str:
        """The notebook cell at `index` in a sentence ("cell In [7]"); for one that did not run, where it is:
        "the code cell after In [6]" ("the first code cell" when none ran before it)."""
        ran = {c.index: c for c in self.cells}
        if index in ran and ran[index].execution_count:
            return ran[index].named
        before = [c for c in self.cells if c.index < index and c.execution_count]
        return f"the code cell after {before[-1].label}" if before else "the first code cell"

    def to_json(self) -> dict:
        return asdict(self)

    def take_probe(self, data: dict, nonce: str) -> None:
        """Fill in what the kernel-side extraction (probe.json) found."""
        if data.get("nonce") != nonce:
            self.tampered += data.get("tampered") or ["the grader's recording was replaced"]
        else:
            self.tampered += data.get("tampered", [])
        for key in ("hooks", "forwards", "model", "tokenizer", "captures", "projections"):
            setattr(self, key, data.get(key))
        self.hooks = self.hooks or []
        self.forwards = self.forwards or []
        self.n_forwards = data.get("n_forwards", 0)
        self.captures_candidates = data.get("captures_candidates", [])
        self.projections_candidates = data.get("projections_candidates", [])
        self.project_imports = sorted(set(data.get("project_imports", [])) | set(data.get("project_modules_loaded", [])))
        self.probe_errors = data.get("errors", []) + [f"environment: {e}" for e in
                                                      (data.get("environment") or {}).get("errors", [])]
        self.environment = data.get("environment") or {}

    @classmethod
    def from_json(cls, data: dict) -> "ExecutionRecord":
        data = dict(data)
        data["cells"] = [CellRecord(**c) for c in data.get("cells", [])]
        data["status"] = Status(data["status"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def read_execution(path: Path) -> ExecutionRecord:
    return ExecutionRecord.from_json(json.loads(Path(path).read_text()))
