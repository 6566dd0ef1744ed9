"""Judge one executed submission in the grader process: compare, run the rubric, write results.

Reads out/<id>/{execution.json, extracted.npz, executed.ipynb, files/}; writes results.json
(Gradescope's schema) and comparison.json. Never trusts the kernel: arrays are loaded without
pickle, sizes were capped by the executor, and the golden never entered the kernel.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from grader.judge import evidence as ev
from grader.judge.compare import Comparison, compare
from grader.judge.golden import Golden, GoldenStore
from grader.judge.hooks import HookSummary, summarize
from grader.execute.records import ExecutionRecord, read_execution, write_json
from grader.rubric.runner import Grade, not_graded, run_rubric

UNJUDGEABLE = {"no_notebook", "invalid_notebook", "grader_error", "tampered"}


@dataclass
class Context:
    """Everything a check may look at."""

    submission: dict
    execution: ExecutionRecord
    comparison: Comparison
    evidence: ev.Evidence
    hooks: HookSummary
    golden: Golden
    out_dir: Path


def load_extracted(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def gather_evidence(rec: ExecutionRecord, out_dir: Path, attachments: list[str]) -> tuple[ev.Evidence, object]:
    nb = None
    nb_path = out_dir / "executed.ipynb"
    if nb_path.is_file():
        nb = nbformat.read(nb_path, as_version=4)
    files_dir = out_dir / "files"
    found = ev.Evidence(
        printed_model=ev.printed_model(nb),
        diagrams=ev.diagrams(nb, files_dir, attachments),
        gif=ev.gif_info(files_dir, rec.files),
        answer=ev.answer_text(nb),
        files=[f["name"] for f in rec.files],
    )
    return found, nb


def mistakes(grade_checks, comparison: Comparison | None, rec: ExecutionRecord) -> list[str]:
    """Short labels for the class overview: which mistake classes this submission shows."""
    labels = []
    if rec.status not in ("ok", "cell_errors"):
        labels.append(f"status: {rec.status}")
    failed = {c.id for c in grade_checks if c.status in ("failed", "error")}
    if "p3.captures_match" in failed and comparison and comparison.captures and comparison.captures.dominant:
        site, offset = comparison.captures.dominant
        if site != "resid_pre" or offset:
            labels.append(f"captures: {site}" + (f" (layer {offset:+d})" if offset else ""))
    for cid in sorted(failed):
        labels.append(f"failed {cid}")
    return labels


def judge(submission: dict, out_dir: Path, store: GoldenStore, rubric: dict, report: bool = True) -> Grade:
    t0 = time.monotonic()
    rec = read_execution(out_dir / "execution.json")
    golden = store.get()
    if rec.status in UNJUDGEABLE:
        checks = not_graded(rubric, rec.reason)
        comparison = None
        found = ev.Evidence()
    else:
        extracted = load_extracted(out_dir / "extracted.npz")
        comparison = compare(rec, extracted, store)
        found, _ = gather_evidence(rec, out_dir, submission.get("attachments", []))
        ctx = Context(submission=submission, execution=rec, comparison=comparison, evidence=found,
                      hooks=summarize(rec.hooks), golden=golden, out_dir=out_dir)
        checks = run_rubric(ctx, rubric)
        write_json(out_dir / "comparison.json", comparison.to_json())
    hooks = summarize(rec.hooks or [])
    caps = comparison.captures if comparison else None
    extra = {
        "status": rec.status,
        "reason": rec.reason,
        "student_name": submission.get("student_name"),
        "student_id": submission.get("student_id"),
        "late": submission.get("late", False),
        "captures_site": (caps.dominant[0] if caps and caps.dominant else None),
        "captures_layer_offset": (caps.dominant[1] if caps and caps.dominant else None),
        "captures_layers_correct": caps.n_correct if caps else 0,
        "hook_sites": dict(hooks.placements),
        "gif_frames": found.gif.frames,
        "answer": found.answer,
        "diagrams": found.diagrams,
        "prompt_tokens": comparison.prompt.token_counts if comparison else [],
        "ran_golden_prompt": comparison.prompt.ran_golden if comparison else False,
        "uses_reference": bool(rec.project_imports),
        "project_imports": rec.project_imports,
        "cell_errors": len(rec.cell_errors),
        "execution_seconds": rec.seconds,
        "notes": rec.notes,
    }
    grade = Grade(submission=submission, status=rec.status, reason=rec.reason, checks=checks, extra=extra,
                  seconds=rec.seconds + (time.monotonic() - t0))
    extra["mistakes"] = mistakes(checks, comparison, rec)
    results = gradescope_results(grade)
    write_json(out_dir / "submission.json", submission)
    if report:
        from grader.report.html import write_submission_report

        try:
            write_submission_report(out_dir, results, golden)
        except Exception as exc:  # noqa: BLE001 - a report bug must not cost the grade
            results["extra_data"].setdefault("notes", []).append(f"the HTML report could not be written: {exc!r}")
    write_json(out_dir / "results.json", results)  # written last: its presence means "done"
    return grade


def gradescope_results(grade: Grade) -> dict:
    """Gradescope's results.json: score, execution_time, output, tests[...], extra_data."""
    tests = []
    for c in grade.checks:
        tests.append({
            "name": f"{c.id}: {c.title}",
            "score": c.points,
            "max_score": c.max_points,
            "status": "passed" if c.status == "passed" else "failed",
            "output": c.output if c.output else "Passed.",
            "visibility": "visible",
            "tags": ["manual"] if c.manual else ([c.status] if c.status == "error" else []),
        })
    header = {
        "ok": "Your notebook ran without errors.",
        "cell_errors": f"Your notebook ran to the end; {grade.extra.get('cell_errors', 0)} cell(s) raised errors.",
    }.get(grade.status, f"Your notebook did not run normally ({grade.status}): {grade.reason}.")
    manual = [c for c in grade.checks if c.manual]
    output = header
    if manual:
        output += (f" Automated score: {grade.score:g} of {grade.auto_max_score:g}. "
                   f"{sum(c.max_points for c in manual):g} more points ({', '.join(c.id for c in manual)}) are "
                   "graded by a TA.")
    return {
        "score": grade.score,
        "execution_time": round(grade.seconds, 1),
        "output": output,
        "tests": tests,
        "extra_data": {**grade.extra, "checks": [
            {"id": c.id, "title": c.title, "status": c.status, "points": c.points, "max_points": c.max_points,
             "manual": c.manual} for c in grade.checks]},
    }


def load_grade(out_dir: Path) -> dict:
    return json.loads((out_dir / "results.json").read_text())
