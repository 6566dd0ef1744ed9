"""Feedback for students: one self-contained page per student, and a zip of it with their tokens.gif.

    grade feedback GRADING_DIR --out OUT_DIR [--after-due [--allow-pending]]

reads a graded output folder (results.json of every submission, the TA's manual.json, each student's
own extracted.npz and tokens.gif) and writes OUT_DIR/<id>/feedback.html and OUT_DIR/<id>.zip (the
page and the student's GIF) for upload to the LMS. The page shows the checks with their feedback at
the visibility rubric.toml sets (`released` after the due date, `self_check` before it: "brief" leaves
out how to fix it), the TA's points and comments on the manually graded checks, the student's own
projections on the sphere at three layers and their GIF. It shows nothing of the reference: no
reference projections, captures, spheres or metrics (those are in the TA's report.html only).

Releasing (`--after-due`) is refused (PendingManualError, exit 2, nothing written) while manual checks
are pending, naming how many of how many students and how to grade them, unless `--allow-pending`:
then their rows say "not graded yet". Checks worth 0 without a TA (nothing gradable was submitted,
grader/report/totals.py manual_rule) are not pending; their row says why they are 0.

The student self-check (grader/run/selfcheck.py) writes the same page for one notebook.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from grader.status import CheckStatus
from grader.io import SubmissionDir, load_npz, read_json, write_atomic
from grader.judge.rubric.late import load_late_policy
from grader.report.totals import Total, totals
from grader.results import CheckResult, Result, load_results
from grader.judge.rubric.config import load_rubric, visibility
from grader.errors import UsageError

PAGE_NAME = "feedback.html"
SPHERE_LAYERS = (0, 18, 35)  # first, middle, last (as the TA report draws them)


class PendingManualError(UsageError):
    """--after-due while manual checks are pending (and no --allow-pending): nothing was released."""


def pending_refusal(grading_dir: Path, scores: list[Total]) -> str | None:
    """Why releasing now is refused, or None when no manual check is pending."""
    pending = [t for t in scores if t.pending]
    if not pending:
        return None
    held = [t for t in pending if t.held]
    regrade = (f" ({sum(len(t.held) for t in held)} of them wait for a regrade of the {len(held)} submission(s) the "
               f"grader failed on: {', '.join(t.result.id for t in held[:5])}{', ...' if len(held) > 5 else ''})"
               if held else "")
    return (f"{sum(len(t.pending) for t in pending)} manual item(s) of {len(pending)} student(s) are not graded "
            f"yet{regrade}, so no feedback was released. Grade them with `grade review {grading_dir}` or "
            f"`grade manual {grading_dir} --export manual.csv` and then `--import manual.csv`; or pass "
            "--allow-pending to release now, with those items marked \"not graded yet\" on the pages.")


def run_feedback(grading_dir: Path, out_dir: Path, after_due: bool, allow_pending: bool = False) -> int:
    """The CLI verb: write the pages and zips, say where; UsageError (exit 2, nothing written) when
    grading_dir holds no graded submission, or on releasing while manual checks are pending."""
    grading_dir, out_dir = Path(grading_dir), Path(out_dir)
    results = load_results(grading_dir) if grading_dir.is_dir() else []
    if not results:
        raise UsageError(f"{grading_dir} holds no graded submissions (no <id>/results.json); run `grade` first")
    pending = [t for t in _scores(grading_dir, results, None).values() if t.pending]
    if after_due and pending and not allow_pending:
        raise PendingManualError(pending_refusal(grading_dir, pending))
    pages = write_feedback(grading_dir, out_dir, after_due)
    when = "released (after the due date)" if after_due else "before the due date (self-check visibility)"
    print(f"wrote {len(pages)} feedback pages, {when}, and a zip per student for the LMS, to {out_dir}")
    if after_due and pending:
        print(f"note: --allow-pending: {sum(len(t.pending) for t in pending)} manual item(s) of {len(pending)} "
              "student(s) show as not graded yet on their pages")
    return 0


def write_feedback(grading_dir: Path, out_dir: Path, after_due: bool, rubric_path: Path | None = None) -> list[Path]:
    """OUT_DIR/<id>/feedback.html and OUT_DIR/<id>.zip for every graded submission; returns the pages."""
    from grader.settings import recorded_assignment

    grading_dir, out_dir = Path(grading_dir), Path(out_dir)
    rubric = load_rubric(rubric_path, recorded_assignment(grading_dir))
    audience = "released" if after_due else "self_check"
    results = load_results(grading_dir)
    scores = _scores(grading_dir, results, rubric_path)
    pages = []
    for result in results:
        sub_dir = grading_dir / result.id
        html = render_feedback(result, sub_dir, {c.id: visibility(rubric, c.id, audience) for c in result.checks},
                               scores[result.id], audience)
        page = out_dir / result.id / PAGE_NAME
        write_atomic(page, html)
        gif = student_gif(sub_dir)
        with zipfile.ZipFile(out_dir / f"{result.id}.zip.tmp", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(PAGE_NAME, html)
            if gif is not None:
                zf.write(gif, gif.name)
        (out_dir / f"{result.id}.zip.tmp").replace(out_dir / f"{result.id}.zip")
        pages.append(page)
    return pages


def _scores(grading_dir: Path, results: list[Result], rubric_path: Path | None) -> dict[str, Total]:
    """Per submission: automated points, the TA's points and comments (manual.json), the late penalty,
    from grader/report/totals.py, so the pages agree with grades.csv."""
    from grader.settings import recorded_assignment

    late = load_late_policy(rubric_path, recorded_assignment(grading_dir))
    return {t.result.id: t for t in totals(grading_dir, results, late)}


def student_gif(sub_dir: Path) -> Path | None:
    """The GIF the student's notebook wrote (or attached): files/tokens.gif, else the only GIF kept."""
    files = Path(sub_dir) / "files"
    if (files / "tokens.gif").is_file():
        return files / "tokens.gif"
    gifs = sorted(files.glob("*.gif")) if files.is_dir() else []
    return gifs[0] if len(gifs) == 1 else None


def student_spheres(sub_dir: Path) -> tuple[str | None, str]:
    """(a PNG data URI of the student's own projections on the sphere at three layers, a caption). Only
    the student's arrays are read: extracted.npz and the variable comparison.json names."""
    comparison = read_json(SubmissionDir(sub_dir).comparison) or {}
    proj = comparison.get("projections") if isinstance(comparison, dict) else None
    if not isinstance(proj, dict) or not proj.get("variable"):
        return None, "No per-layer projections were found after your notebook ran."
    keys = {lp.get("layer"): lp.get("key") for lp in proj.get("layers") or [] if isinstance(lp, dict)}
    wanted = {layer: f"projections.{proj['variable']}.{keys[layer]}" for layer in SPHERE_LAYERS if layer in keys}
    arrays = load_npz(SubmissionDir(sub_dir).extracted, list(wanted.values()))
    import numpy as np

    from grader.judge.projections import as_3xn
    from grader.spec.geometry import to_sphere

    panels = []
    for layer in SPHERE_LAYERS:
        pts = None
        if wanted.get(layer) in arrays:
            pts, _ = as_3xn(np.asarray(arrays[wanted[layer]]))
        if pts is not None and np.isfinite(pts).all() and pts.shape[1] > 0:
            panels.append((layer, to_sphere(pts).astype(np.float64)))
        else:
            panels.append((layer, None))
    if all(p is None for _, p in panels):
        return None, f"`{proj['variable']}` holds no 3 x N projection at layers {', '.join(map(str, SPHERE_LAYERS))}."
    return _draw_spheres(panels), (f"`{proj['variable']}` at layers {', '.join(map(str, SPHERE_LAYERS))}, each token "
                                   "scaled to unit length for display; colour follows token position (dark = first).")


def _draw_spheres(panels) -> str:
    from grader.report import plots

    fig = plots._figure(7.2, 2.5)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.9, wspace=0.0)
    for i, (layer, pts) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        ax.set_title(f"your layer {layer}", fontsize=8, pad=0)
        if pts is None:
            ax.set_axis_off()
            ax.text2D(0.5, 0.5, "no projection\nfor this layer", ha="center", va="center", fontsize=8, color="#777",
                      transform=ax.transAxes)
            continue
        plots.draw_sphere_light(ax, pts, plots._token_colors(pts.shape[1]))
    return plots._to_uri(fig, 90)


def check_rows(checks: list[CheckResult], visibilities: dict[str, str], audience: str) -> list[dict]:
    rows = []
    for c in checks:
        vis = visibilities.get(c.id, "full")
        status = CheckStatus.parse(c.status)
        label, tone = (status.student_label, status.tone) if status else (str(c.status), "warn")
        withheld = vis == "brief" and c.withheld and c.status != "passed"
        rows.append({"id": c.id, "title": c.title, "points": c.points, "max_points": c.max_points, "manual": c.manual,
                     "status_label": label, "tone": tone, "feedback": c.text(vis),
                     "withheld": withheld, "withheld_text": _withheld_words(audience) if withheld else ""})
    return rows


def _withheld_words(audience: str) -> str:
    if audience == "self_check":
        return "How to fix it is not shown before the due date."
    return "How to fix it is not shown here; ask your TA."


def render_feedback(result: Result, sub_dir: Path, visibilities: dict[str, str], scores: Total,
                    audience: str) -> str:
    """The student's page (templates/feedback.html): self-contained, nothing of the reference."""
    from grader.report.render import answer_html, image_uri, render, section
    from grader.status import describe

    sub_dir = Path(sub_dir)
    label, tone, _ = describe(result.summary.status)
    gif = student_gif(sub_dir)
    spheres = section(lambda: dict(zip(("src", "caption"), student_spheres(sub_dir))))
    gif_uri = section(lambda: {"src": image_uri(gif) if gif is not None else None,
                               "name": gif.name if gif is not None else None})
    rows = [r for r in check_rows(result.checks, visibilities, audience) if not r["manual"]]
    manual_rows = [{"id": m.check, "title": m.title, "max_points": m.max_points, "points": m.points,
                    "comment": m.comment if m.points is not None and not m.automatic else "", "note": m.note}
                   for m in scores.manual]
    info = result.submission
    ctx = {
        "header": {"id": result.id, "student_name": info.student_name, "notebook": info.notebook, "late": info.late,
                   "status_label": label, "status_tone": tone, "reason": result.summary.reason,
                   "total": scores.score, "possible": scores.possible, "automated": scores.automated,
                   "automated_max": result.auto_max_score, "late_penalty": scores.late_penalty,
                   "pending": scores.pending},
        "audience": audience,
        "checks": rows,
        "manual": manual_rows,
        "spheres": spheres,
        "gif": gif_uri,
        "gif_frames": result.summary.gif_frames,
        "answer": answer_html(result.summary.answer),  # their markdown rendered, without a label they typed
        "any_withheld": any(r["withheld"] for r in rows),
    }
    return render(PAGE_NAME, ctx)


def write_student_page(sub_dir: Path, rubric: dict, audience: str = "self_check", name: str = PAGE_NAME) -> Path | None:
    """The page for one graded folder (the self-check's), next to its results; None when not graded."""
    result = Result.read(sub_dir)
    if result is None:
        return None
    scores = totals(Path(sub_dir).parent, [result])[0]  # the self-check: no TA points yet
    html = render_feedback(result, sub_dir, {c.id: visibility(rubric, c.id, audience) for c in result.checks},
                           scores, audience)
    page = Path(sub_dir) / name
    write_atomic(page, html)
    return page
