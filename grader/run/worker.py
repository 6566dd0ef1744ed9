"""Grade one submission in its own process: python -m grader.run.worker JOB.json

One process per submission isolates the batch from anything a submission does to its grader
process; the batch writes a result for a worker that crashed. The job file holds the submission,
the output folder, the run's Settings and its ExecuteConfig (all JSON); the worker calls
grader.pipeline.grade_one and prints one RESULT line.

SIGTERM (the batch stopping on Ctrl-C) raises SystemExit(143) here, so the executor's context managers
end the kernel and remove its working folder on the way out; the batch sends SIGKILL if that takes
longer than its grace period, and records the submission as interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

PARENT_ENV = "QGRADER_BATCH_PID"  # set by the batch: the pid this worker must not outlive


@dataclass
class Job:
    submission: dict  # Submission.to_json()
    out_dir: str
    settings: dict  # Settings.to_json()
    execute: dict  # ExecuteConfig.to_json()

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def run_job(job: Job) -> dict:
    from grader.execute.config import ExecuteConfig
    from grader.intake.submission import Submission
    from grader.pipeline import grade_one
    from grader.settings import Settings

    sub = Submission.from_json(job.submission)
    grade = grade_one(sub, Path(job.out_dir), Settings.from_json(job.settings), ExecuteConfig.from_json(job.execute))
    return {"id": sub.id, "status": grade.status, "score": grade.score, "max_score": grade.max_score,
            "reason": grade.reason}


def die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the batch that started it dies (kill -9 included).

    The batch may die before this runs (the worker is still importing); then the worker has been
    re-parented already, and it compares its parent with the pid the batch put in its environment.
    Not Linux: a killed batch leaves this worker to finish on its own.
    """
    from grader.execute.sandbox import set_pdeathsig

    expected = os.environ.get(PARENT_ENV)
    set_pdeathsig(int(expected) if expected else None)


def exit_on_sigterm() -> None:
    """SIGTERM -> SystemExit(128 + 15): not an Exception, so nothing records it as a grader error, and
    every `finally` and `with` on the way out runs (the kernel is shut down, the working folder removed)."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    die_with_parent()
    exit_on_sigterm()
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
