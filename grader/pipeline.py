"""Grading one submission, the one place it is written down:

    Submission -> execute (a sandboxed kernel) -> judge (this process) -> Grade -> results.json, report.html

    execute  grader/execute/   out/<id>/execution.json, executed.ipynb, extracted.npz, files/
    judge    grader/judge/     every verdict: comparison, evidence, the rubric's checks (grader/judge/rubric/)
    results  grader/results.py out/<id>/results.json (Gradescope's schema), comparison.json, submission.json
    report   grader/report/    out/<id>/report.html

The batch (grader/run/batch.py) runs `grade_one` in a worker process per submission; the student
self-check and Gradescope's container call it directly. results.json is written last: its presence
means "done".
"""

from __future__ import annotations

import time
from pathlib import Path

from grader.execute.executor import Executor
from grader.execute.records import ExecutionRecord
from grader.intake.submission import Submission, SubmissionInfo
from grader.io import SubmissionDir, write_json
from grader.judge.golden import GoldenStore
from grader.judge.verdicts import judge
from grader.results import Grade
from grader.settings import Settings
from grader.status import Status


def grade_one(sub: Submission, out_dir: Path, settings: Settings, execute_cfg, store: GoldenStore | None = None,
              rubric: dict | None = None) -> Grade:
    """Execute, judge, write results and the report for one submission into out_dir."""
    Executor(execute_cfg).run(sub, out_dir)
    carry = None
    if settings.carry_forward:  # Part 3 wrong: Part 5 run again on correct captures (grader/judge/carry.py)
        from grader.judge.carry import carry_forward

        def carry(judgement, store, rubric):
            return carry_forward(judgement, sub, out_dir, execute_cfg, store, rubric)
    return conclude(sub.info(), out_dir, settings, store, rubric, carry)


def record_failure(sub: Submission, out_dir: Path, reason: str, seconds: float, settings: Settings) -> Grade:
    """The grader itself failed on this submission (a worker crashed or hung): still a result, with the reason."""
    write_json(SubmissionDir(out_dir).execution,
               ExecutionRecord(sub.id, Status.GRADER_ERROR, reason, seconds=round(seconds, 2)).to_json())
    return conclude(sub.info(), out_dir, settings)


def conclude(info: SubmissionInfo, out_dir: Path, settings: Settings, store: GoldenStore | None = None,
             rubric: dict | None = None, carry=None) -> Grade:
    """Judge what execution left in out_dir, then write comparison.json, submission.json, the report
    and, last, results.json."""
    t0 = time.monotonic()
    store = store or settings.golden_store()
    rubric = rubric if rubric is not None else settings.load_rubric()
    judgement = judge(out_dir, store, rubric, info.attachments)
    if carry is not None:
        judgement = carry(judgement, store, rubric)
    if judgement.judged:
        write_json(SubmissionDir(out_dir).comparison, judgement.comparison.to_json())
    grade = Grade(submission=info, summary=judgement.summary(info), checks=judgement.checks,
                  seconds=judgement.execution.seconds + (time.monotonic() - t0))
    results = grade.to_results()
    write_json(SubmissionDir(out_dir).submission, info.to_json())
    if settings.report:
        from grader.report.submission import write_submission_report
        from grader.judge.rubric.late import load_late_policy

        try:
            write_submission_report(out_dir, grade, judgement, load_late_policy(settings.rubric))
        except Exception as exc:  # noqa: BLE001 - a report bug must not cost the grade
            results["extra_data"]["notes"].append(f"the HTML report could not be written: {exc!r}")
    write_json(SubmissionDir(out_dir).results, results)  # written last: its presence means "done"
    return grade
