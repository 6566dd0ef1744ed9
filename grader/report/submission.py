"""report.html: one self-contained page per judged submission, for the TA.

Renders the Grade (or a Result read back from results.json) and the Judgement the judge stage
produced; it computes no verdict of its own. In order: header (score, status in words), notes,
score table, run (cell errors), Part 3 (hook table, site strip), Part 5 (projection error per
layer, spheres, GIF), and the TA's evidence (diagram, answer next to the reference metrics).
A section that fails to build shows its error instead of taking the page down.
"""

from __future__ import annotations

import time
from pathlib import Path

from grader.io import write_atomic
from grader.judge.evidence import answer_body
from grader.judge.verdicts import Judgement
from grader.report import sections
from grader.report.carry import carry_card
from grader.judge.rubric.late import LatePolicy
from grader.report.render import answer_html, fmt_bytes, or_empty, render, section, sentence
from grader.status import CheckStatus, describe



def write_submission_report(out_dir: Path, grade, judgement: Judgement, late: LatePolicy = LatePolicy()) -> Path:
    """Write out_dir/report.html for one judged submission; returns its path. `grade` is a Grade or a Result."""
    path = Path(out_dir) / "report.html"
    write_atomic(path, render_submission(Path(out_dir), grade, judgement, late))
    return path


def render_submission(out_dir: Path, grade, judgement: Judgement, late: LatePolicy = LatePolicy()) -> str:
    t0 = time.monotonic()
    ctx = submission_context(out_dir, grade, judgement, late)
    ctx["build_seconds"] = time.monotonic() - t0
    return render("submission.html", ctx)


def submission_context(out_dir: Path, grade, j: Judgement, late: LatePolicy = LatePolicy()) -> dict:
    """The template's data for report.html."""
    page = sections.Page(out_dir=out_dir, grade=grade, judgement=j, late=late)
    return {
        "has_cells": bool(j.execution.cells),
        "has_hooks": bool(j.execution.hooks),
        "has_notebook": j.notebook is not None,
        "header": header(page),
        "notes": or_empty(notes, page),
        "checks": check_rows(grade),
        "facts": or_empty(facts, page) if j.judged else [],
        "judged": j.judged,
        "errors": section(cell_errors, page),
        "hooks": section(sections.hook_table, page),
        "sites": section(sections.site_strip, page) if j.judged else None,
        "projection": section(sections.projection_section, page) if j.judged else None,
        "gif": section(sections.gif_section, page),
        "diagrams": section(sections.diagram_section, page),
        "answer": section(sections.answer_section, page),
        "carry": section(carry_card, page),
        "golden": {"model": j.golden.model_id or "", "revision": j.golden.revision or ""},
    }


def header(page: sections.Page) -> dict:
    """Who, the score (automated and TA-pending parts), and the run status in words."""
    grade, sub, summary = page.grade, page.grade.submission, page.grade.summary
    label, tone, _ = describe(summary.status)
    manual = [c for c in grade.checks if c.manual]
    return {
        "id": sub.id or page.out_dir.name,
        "student_name": sub.student_name,
        "student_id": sub.student_id,
        "notebook": sub.notebook,
        "late": bool(sub.late),
        "score": grade.score,
        "max_score": sum(c.max_points for c in grade.checks),
        "auto_max": sum(c.max_points for c in grade.checks if not c.manual),
        "manual_points": sum(c.max_points for c in manual),
        "manual_ids": [c.id for c in manual],
        "status": summary.status,
        "status_label": label,
        "status_tone": tone,
        "reason": sentence(summary.reason or ""),
        "seconds": summary.execution_seconds or page.judgement.execution.seconds,
    }


def check_rows(grade) -> list[dict]:
    """The score table: one row per check with its feedback (manual checks say 'TA to grade'). The note of
    the TA check that shows the written answer ("Answer: ...") shows it as the student's rendered markdown."""
    rows = []
    answer = grade.summary.answer
    answer_note = f"Answer: {answer_body(answer)}" if answer else None
    for c in grade.checks:
        status = CheckStatus.MANUAL if c.manual else CheckStatus.parse(c.status)
        label, tone = (status.ta_label, status.tone) if status else (str(c.status), "warn")
        if status == "failed" and 0 < c.points < c.max_points:
            label, tone = "partial", "warn"
        feedback = c.output
        if feedback == f"Not graded: {grade.summary.reason or ''}":  # said once above the table instead
            feedback = ""
        html = answer_html(answer) if c.manual and answer_note and (feedback or "").strip() == answer_note.strip() \
            else None
        rows.append({"id": c.id, "title": c.title or c.id, "points": None if c.manual else c.points,
                     "max_points": c.max_points, "status_label": label, "tone": tone, "manual": c.manual,
                     "feedback": feedback, "feedback_answer": html})
    return rows


def facts(page: sections.Page) -> list[dict]:
    """The one-line chips under the header: captures, projections, prompt, GIF, hooks."""
    summary, n, cmp = page.grade.summary, page.n_layers, page.judgement.comparison
    out = []
    if summary.captures_site is None:
        out.append({"label": "captures", "value": "none found", "tone": "bad"})
    else:
        offset = summary.captures_layer_offset or 0
        where = summary.captures_site + (f" (layer {offset:+d})" if offset else "")
        correct = summary.captures_layers_correct
        out.append({"label": "captures", "value": f"{where}; {correct}/{n} layers right",
                    "tone": "good" if correct == n else "bad"})
    proj = cmp.projections if cmp else None
    if proj:
        passed = sum(lp.passed for lp in proj.layers)
        wrong_site = summary.captures_site is not None and summary.captures_layers_correct != n
        against = " the PCA of its own captures" if proj.reference == "own_captures" and wrong_site else ""
        out.append({"label": "projections", "value": f"{passed}/{n} layers match{against}",
                    "tone": "good" if passed == n and proj.n_layers == n else "bad"})
    else:
        out.append({"label": "projections", "value": "none found", "tone": "bad"})
    tokens = summary.prompt_tokens or []
    if summary.ran_golden_prompt:
        out.append({"label": "prompt", "value": f"{page.judgement.golden.n_tokens} tokens, the assignment's",
                    "tone": "good"})
    else:
        out.append({"label": "prompt", "value": (", ".join(map(str, tokens)) + " tokens") if tokens else "no forward pass",
                    "tone": "bad"})
    frames = summary.gif_frames
    out.append({"label": "GIF", "value": f"{frames} frames" if frames else "none", "tone": "good" if frames == n else "bad"})
    out.append({"label": "hooks", "value": "; ".join(f"{c} × {w}" for w, c in summary.hook_sites.items()) or "none",
                "tone": "neutral"})
    return out


def notes(page: sections.Page) -> list[dict]:
    """Things a TA should know before grading: lateness, duplicates, imports of our code, truncation."""
    sub, summary, rec = page.grade.submission, page.grade.summary, page.judgement.execution
    out: list[dict] = []
    if sub.late:
        penalty = f" The rubric's late penalty ({page.late.describe()}) comes off the total in grades.csv." \
            if page.late.active else ""
        out.append({"tone": "warn", "text": "Submitted late (Canvas marked the file late)." + penalty})
    for text in sub.notes or []:
        out.append({"tone": "warn", "text": sentence(str(text))})
    if summary.uses_reference:
        out.append({"tone": "bad", "text": f"The notebook imported the grader's reference code "
                                           f"({', '.join(summary.project_imports)}); check that the work is the student's own."})
    for text in rec.tampered or []:
        out.append({"tone": "bad", "text": f"Interfered with the grader: {text}"})
    adapted = describe_environment((rec.environment or {}).get("adaptations") or [])
    if adapted:
        out.append({"tone": "info", "text": f"Ran as written for Colab, adapted to the grader (no points lost): {adapted}."})
    for cell in rec.cells:
        if cell.output_truncated_bytes:
            out.append({"tone": "info", "text": f"The output of {cell.named} was truncated "
                                                f"({fmt_bytes(cell.output_truncated_bytes)} not kept)."})
    caps = page.judgement.comparison.captures if page.judgement.comparison else None
    if caps and caps.note:
        out.append({"tone": "info", "text": f"Captures: {caps.note}."})
    if caps and (caps.candidates or 1) > 1:
        out.append({"tone": "info", "text": f"{caps.candidates} variables looked like per-layer captures; "
                                            f"`{caps.variable}` matched best and was judged."})
    seen = {n["text"] for n in out}
    for text in summary.notes or rec.notes or []:
        if sentence(str(text)) not in seen:
            out.append({"tone": "info", "text": sentence(str(text))})
    for text in rec.probe_errors or []:
        out.append({"tone": "info", "text": f"Grader probe: {text}"})
    return out


ENVIRONMENT_WORDS = (  # (kinds, what a TA reads; {n} is how often)
    (("device.tensor", "device.module", "device.batch", "device.factory"), "{n} CUDA device move(s) mapped to the CPU"),
    (("device.map",), "device_map at load mapped to the CPU"),
    (("device.default",), "the default device 'cuda' set to the CPU"),
    (("device.load",), "torch.load onto the GPU loaded onto the CPU"),
    (("cuda.query", "cuda.call"), "{n} torch.cuda call(s) answered as on a GPU runtime"),
    (("cuda.autocast",), "autocast('cuda') ran without changing the dtype"),
    (("shell.gpu",), "nvidia-smi answered that the grader has no GPU"),
    (("colab.import", "colab.drive", "colab.userdata", "colab.call"), "google.colab used {n} time(s) (drive, secrets, files)"),
    (("hf.login",), "the Hugging Face login skipped (the grader is offline)"),
    (("shell.pip",), "pip installs answered offline"),
    (("shell.network",), "network shell commands skipped"),
    (("attn.flash",), "flash attention ran as PyTorch's SDPA attention (the same residual stream)"),
    (("xla.import", "xla.device", "xla.call"), "torch_xla (TPU) used {n} time(s), run on the CPU by the grader's stand-in"),
)


def describe_environment(adaptations: list[dict]) -> str:
    """'3 CUDA device move(s) mapped to the CPU; pip installs answered offline' from the shim's record
    (one entry per place in the notebook: a model.to("cuda") counts once, not once per parameter)."""
    parts = []
    for kinds, words in ENVIRONMENT_WORDS:
        n = sum(a.get("kind") in kinds for a in adaptations)
        if n:
            parts.append(words.format(n=n))
    return "; ".join(parts)


def cell_errors(page: sections.Page) -> dict:
    """Cells that raised or timed out, with their tracebacks (colour codes stripped, length capped)."""
    return sections.cell_error_rows(page.judgement.execution.cells)
