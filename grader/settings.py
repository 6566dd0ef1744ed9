"""What a grading run was asked to do, as plain values: Settings, and the execution settings built from it.

The CLI turns arguments into Settings; nothing downstream sees argparse. `Settings.execute_config`
decides the sandbox mode once for the whole run (and says it once); the result crosses to worker
processes as JSON.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from grader.execute.config import ExecuteConfig

TINY = "tiny"


@dataclass
class Settings:
    model: str = TINY  # "tiny" (the bundled miniature), a hub id read from the HF cache, or a local folder
    device: str = "cpu"  # where the grader computes goldens: cpu or cuda
    workers: int = 1  # submissions graded at once
    cell_timeout: float = 300.0  # seconds per cell
    timeout: float = 1200.0  # seconds per notebook
    memory_gb: float | None = None  # address-space limit per kernel; None: 8 for the miniature, none otherwise; 0: none
    isolate: bool = True  # unprivileged uid and namespaces for kernels, where the machine allows
    rubric: Path | None = None  # a rubric.toml overriding points or disabling checks
    report: bool = True  # write report.html per submission
    golden_cache: Path | None = None  # where goldens are cached (default: the project cache)
    full_render: bool = False  # draw the plotting cell's 3-D labels too (slower); default: frames with blank labels

    @property
    def memory_bytes(self) -> int | None:
        from grader.execute.sandbox import GB

        memory = self.memory_gb if self.memory_gb is not None else (8 if self.model == TINY else 0)
        return int(memory * GB) or None

    def hf_home(self) -> Path | None:
        """The HF_HOME the kernels see: the miniature's offline cache, or the user's own."""
        if self.model == TINY:
            from miniature.hf_cache import ensure_hf_home

            return ensure_hf_home()
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
                             threads=max(1, (os.cpu_count() or 1) // max(1, self.workers)),
                             sandbox=sandbox_cfg, sandbox_mode=sandbox.mode,
                             remap_cuda=not self.device.startswith("cuda"), fast_plot=not self.full_render)

    def model_warnings(self) -> list[str]:
        """What an instructor should hear about --model before grading with it."""
        import json

        from grader.spec.assignment import MODEL_ID

        if self.model in (TINY, MODEL_ID):
            return []
        config = Path(self.model) / "config.json"
        if config.is_file():
            cfg = json.loads(config.read_text())
            if cfg.get("architectures") == ["Qwen3ForCausalLM"] and cfg.get("num_hidden_layers") == 36 \
                    and cfg.get("hidden_size") == 2560:
                return []
            return [f"{self.model} is not Qwen3-4B (architectures {cfg.get('architectures')}, "
                    f"{cfg.get('num_hidden_layers')} layers, hidden {cfg.get('hidden_size')}): students' notebooks "
                    f"load {MODEL_ID}, and their verdicts will be judged against this model instead"]
        return [f"--model {self.model} is not the assignment's model ({MODEL_ID}): students' notebooks load "
                f"{MODEL_ID}, and their verdicts will be judged against {self.model} instead"]

    def golden_store(self):
        from grader.judge.golden import GoldenStore

        return GoldenStore(self.model, self.golden_cache, device=self.device)

    def load_rubric(self) -> dict:
        from grader.rubric.config import load_rubric

        return load_rubric(self.rubric)

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
