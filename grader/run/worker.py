"""Grade one submission end to end in its own process: python -m grader.run.worker JOB.json

execute (kernel) -> judge (this process) -> report. One process per submission isolates the
batch from anything a submission does to its grader process; the batch writes a result for a
worker that crashed. The last file written is results.json: its presence means "done".
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from grader.execute.executor import ExecuteConfig
from grader.execute.kernel import KernelConfig
from grader.intake.discovery import Submission


@dataclass
class Job:
    submission: dict  # Submission fields, paths as strings
    out_dir: str
    execute: dict  # ExecuteConfig fields
    model: str = "tiny"
    device: str = "cpu"
    rubric: str | None = None
    golden_cache: str | None = None
    report: bool = True
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def submission_to_dict(sub: Submission) -> dict:
    d = asdict(sub)
    d["notebook"] = str(sub.notebook) if sub.notebook else None
    d["attachments"] = [str(p) for p in sub.attachments]
    return d


def submission_from_dict(d: dict) -> Submission:
    d = dict(d)
    d["notebook"] = Path(d["notebook"]) if d.get("notebook") else None
    d["attachments"] = [Path(p) for p in d.get("attachments", [])]
    return Submission(**{k: v for k, v in d.items() if k in {f.name for f in fields(Submission)}})


def execute_config_to_dict(cfg: ExecuteConfig) -> dict:
    d = asdict(cfg)
    d["hf_home"] = str(cfg.hf_home) if cfg.hf_home else None
    return d


def execute_config_from_dict(d: dict) -> ExecuteConfig:
    from grader.execute.sandbox import SandboxConfig

    d = dict(d)
    d["kernel"] = KernelConfig(**d.get("kernel", {}))
    sandbox = dict(d.get("sandbox", {}))
    if "uids" in sandbox:
        sandbox["uids"] = tuple(sandbox["uids"])
    d["sandbox"] = SandboxConfig(**sandbox)
    d["hf_home"] = Path(d["hf_home"]) if d.get("hf_home") else None
    return ExecuteConfig(**d)


def submission_summary(sub: Submission) -> dict:
    """What reports and results show about who submitted what."""
    return {
        "id": sub.id, "source": sub.source, "student_name": sub.student_name, "student_id": sub.student_id,
        "late": sub.late, "notebook": sub.notebook.name if sub.notebook else None,
        "attachments": [_display_name(p) for p in sub.attachments], "notes": list(sub.notes),
    }


def _display_name(path: Path) -> str:
    from grader.intake.discovery import parse_canvas_name

    canvas = parse_canvas_name(path.name)
    return canvas.filename if canvas else path.name


def run_job(job: Job) -> dict:
    from grader.execute.executor import Executor
    from grader.judge.golden import GoldenStore
    from grader.judge.verdicts import judge
    from grader.rubric.config import load_rubric

    sub = submission_from_dict(job.submission)
    out_dir = Path(job.out_dir)
    Executor(execute_config_from_dict(job.execute)).run(sub, out_dir)
    store = GoldenStore(job.model, Path(job.golden_cache) if job.golden_cache else None, device=job.device)
    grade = judge(submission_summary(sub), out_dir, store, load_rubric(Path(job.rubric) if job.rubric else None),
                  report=job.report)
    return {"id": sub.id, "status": grade.status, "score": grade.score, "max_score": grade.max_score,
            "reason": grade.reason}


PARENT_ENV = "QGRADER_BATCH_PID"  # set by the batch: the pid this worker must not outlive


def die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the batch that started it dies (kill -9 included).

    The batch may die before this runs (the worker is still importing); then the worker has been
    re-parented already, and it compares its parent with the pid the batch put in its environment.
    Not Linux: a killed batch leaves this worker to finish on its own.
    """
    from grader.execute.sandbox import set_pdeathsig

    expected = os.environ.get(PARENT_ENV)
    set_pdeathsig(int(expected) if expected else None)


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    die_with_parent()
    job = Job(**json.loads(Path(argv[0]).read_text()))
    try:
        summary = run_job(job)
    except Exception:  # noqa: BLE001 - reported to the batch, which records a grader_error result
        sys.stderr.write(traceback.format_exc())
        return 3
    sys.stdout.write("RESULT " + json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
