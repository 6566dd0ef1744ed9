"""How a submission is executed: ExecuteConfig (plain values, JSON round trip) and the kernel's environment."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.execute.kernel import KernelConfig
from grader.execute.sandbox import SandboxConfig
from grader.spec.pack import DEFAULT_LIMITS  # the one declaration of the time and output budgets


@dataclass
class ExecuteConfig:
    hf_home: Path | None = None  # the HF cache the kernel sees (the miniature's by default)
    cell_timeout: float = DEFAULT_LIMITS.cell_timeout  # seconds per cell
    notebook_timeout: float = DEFAULT_LIMITS.notebook_timeout  # seconds for all student cells together
    output_cap_bytes: int = DEFAULT_LIMITS.output_cap_bytes  # outputs kept per cell in executed.ipynb
    num_layers: int = 0  # the assignment model's decoder layers (0: read from the model the notebook loaded)
    max_extract_bytes: int = 1 << 30  # captures/projections read back from the kernel
    max_kept_file_bytes: int = 20 << 20  # largest image/GIF copied out of the working dir
    threads: int = 1  # torch/OpenMP threads inside the kernel
    probe_timeout: float = 300.0  # seconds for the hidden install / extract steps
    kernel: KernelConfig = field(default_factory=KernelConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    sandbox_mode: str = "limits"  # "isolated" or "limits", decided once per run by Sandbox.detect
    extra_env: dict[str, str] = field(default_factory=dict)
    keep_workdir: bool = False  # for debugging
    remap_cuda: bool = True  # run CUDA code on the CPU (False when the grader has a GPU: nothing is remapped)
    seed: int = 0  # random, numpy and torch seeded with it before the first cell: a rerun gives the same results.json
    fast_plot: bool = True  # draw 3-D text labels blank (fastplot.py: same frames, sizes, errors); False: full render

    def to_json(self) -> dict:
        d = asdict(self)
        d["hf_home"] = str(self.hf_home) if self.hf_home else None
        return d

    @classmethod
    def from_json(cls, data: dict) -> "ExecuteConfig":
        d = dict(data)
        d["kernel"] = KernelConfig(**d.get("kernel", {}))
        sandbox = dict(d.get("sandbox", {}))
        if "uids" in sandbox:
            sandbox["uids"] = tuple(sandbox["uids"])
        d["sandbox"] = SandboxConfig(**sandbox)
        d["hf_home"] = Path(d["hf_home"]) if d.get("hf_home") else None
        return cls(**d)


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
        "PYTHONHASHSEED": str(cfg.seed),  # the order of a set of strings fixed, as the seed fixes the random draws
    })
    if cfg.hf_home:
        env["HF_HOME"] = str(cfg.hf_home)
    env.update(cfg.extra_env)
    return env
