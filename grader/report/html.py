"""HTML: one self-contained report per submission (report.html), and the class index (index.html).

Both pages are single files: CSS and JS inline, images as data URIs, no fonts or scripts from the
network (a Content-Security-Policy meta tag forbids any). Everything a student controls (notebook
outputs, tracebacks, variable and file names, the markdown answer) is untrusted: the templates
autoescape every value, the answer is shown as escaped preformatted text, and the submission page
runs no script at all.

The per-submission page is built from the files judge.py leaves in out/<id>/ (comparison.json may
be absent for submissions that could not be judged) plus the golden, in this order: header (score,
status in words), notes, score table, run (cell errors), Part 3 (hook table, site strip), Part 5
(projection error per layer, spheres, GIF), and the TA's evidence (diagram, answer next to the
reference metrics). A section that fails to build shows its error instead of taking the page down.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import statistics
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from grader.judge.hooks import layer_ranges
from grader.rubric.plugin import MANUAL_PREFIX
from grader.execute.records import write_atomic
from grader.spec.sites import SITES, TARGET_SITE, describe, parse_module_path, sites_readable_by

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_INLINE_GIF_BYTES = 5 * 1024 * 1024  # larger GIFs are shown as their first frame
MAX_INLINE_IMAGE_BYTES = 3 * 1024 * 1024  # larger diagram images are downscaled
MAX_DIAGRAM_IMAGES = 6  # images shown inline in the diagram section; the rest are listed
MAX_TRACEBACK_CHARS = 6000
MAX_ERROR_CELLS = 12
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
IMAGE_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
              ".webp": "image/webp", ".svg": "image/svg+xml"}

STATUS_WORDS: dict[str, tuple[str, str]] = {  # status -> (what a TA reads, tone)
    "ok": ("Ran without errors", "good"),
    "cell_errors": ("Ran to the end, but some cells raised errors", "warn"),
    "timeout": ("Stopped: ran out of time", "bad"),
    "kernel_died": ("Stopped: the kernel died", "bad"),
    "extract_failed": ("Ran, but its results could not be read back", "bad"),
    "tampered": ("Not graded: the notebook interfered with the grader", "bad"),
    "no_notebook": ("Not graded: no notebook was submitted", "bad"),
    "invalid_notebook": ("Not graded: not a readable notebook", "bad"),
    "grader_error": ("Grader error: needs a maintainer, not the student", "bad"),
}
STATUS_SHORT = {"ok": "ran", "cell_errors": "cell errors", "timeout": "timed out", "kernel_died": "kernel died",
                "extract_failed": "extract failed", "tampered": "tampered", "no_notebook": "no notebook",
                "invalid_notebook": "invalid notebook", "grader_error": "grader error"}
MAX_INDEX_MISTAKES = 14  # mistake classes listed on the index; the rest are summed up
CHECK_STATUS_WORDS = {"passed": ("passed", "good"), "failed": ("failed", "bad"), "error": ("grader error", "warn"),
                      "manual": ("TA to grade", "manual")}
SITE_SHORT = {"resid_pre": "pre", "ln1_out": "ln1", "attn_out": "attn", "resid_mid": "mid", "ln2_out": "ln2",
              "mlp_out": "mlp", "resid_post": "post", "unknown": "?", "shape_mismatch": "shape",
              "generate_step": "gen", "missing": "–"}
SITE_EXTRA_WORDS = {"unknown": "matches none of the seven activations of this layer or the layers beside it",
                    "shape_mismatch": "has the wrong shape for this prompt",
                    "generate_step": "holds a single token (a generate() decoding step)",
                    "missing": "was not captured"}


# --- entry points -------------------------------------------------------------------------------


def write_submission_report(out_dir: Path, results: dict, golden) -> Path:
    """Write out_dir/report.html for one judged submission; returns its path."""
    out_dir = Path(out_dir)
    path = out_dir / "report.html"
    write_atomic(path, render_submission(out_dir, results, golden))
    return path


def write_index(out_root: Path, rows: list[dict]) -> Path:
    """Write out_root/index.html for the class from gradebook.load_results rows; returns its path."""
    out_root = Path(out_root)
    path = out_root / "index.html"
    write_atomic(path, render_index(out_root, rows))
    return path


def render_submission(out_dir: Path, results: dict, golden) -> str:
    t0 = time.monotonic()
    ctx = submission_context(Path(out_dir), results, golden)
    ctx["build_seconds"] = time.monotonic() - t0
    return _render("submission.html", ctx)


def render_index(out_root: Path, rows: list[dict]) -> str:
    return _render("index.html", index_context(Path(out_root), rows))


# --- templates ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pts"] = lambda x: "–" if x is None else f"{float(x):g}"
    env.filters["deg"] = _fmt_deg
    return env


def _render(name: str, ctx: dict) -> str:
    env = _env()
    ctx = dict(ctx)
    ctx["css"] = (TEMPLATES / "report.css").read_text()
    if name == "index.html":
        ctx["script"] = (TEMPLATES / "sort.js").read_text()
        digest = base64.b64encode(hashlib.sha256(ctx["script"].encode()).digest()).decode()
        from markupsafe import Markup

        ctx["script_hash"] = Markup(f"'sha256-{digest}'")  # base64 and quotes: ours, not the student's
    return env.get_template(name).render(**ctx)


def _fmt_deg(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 0.01:
        return "<0.01°"
    return f"{x:.2f}°" if x < 10 else f"{x:.1f}°"


# --- reading the submission folder ----------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_notebook(path: Path):
    """The executed notebook as a NotebookNode, or None when it is missing or unreadable."""
    import nbformat

    try:
        return nbformat.reads(path.read_text(), as_version=4)
    except Exception:  # noqa: BLE001 - missing or unreadable: the page says so where it matters
        return None


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are full of them)."""
    return ANSI_ESCAPE.sub("", text)


@dataclass
class Section:
    """One block of the page: its data, or the error that stopped it from being built."""

    data: dict = field(default_factory=dict)
    broken: str | None = None


def _section(build: Callable[..., dict], *args) -> Section:
    try:
        return Section(data=build(*args))
    except Exception as exc:  # noqa: BLE001 - one broken section must not cost the page
        return Section(broken=f"{build.__name__}: {exc.__class__.__name__}: {exc}")


def _or_empty(build: Callable[..., list], *args) -> list:
    """A list-valued part of the header; on a bug, one entry naming it instead of no page at all."""
    try:
        return build(*args)
    except Exception as exc:  # noqa: BLE001
        return [{"tone": "bad", "label": build.__name__, "value": f"could not be built: {exc!r}",
                 "text": f"{build.__name__} could not be built: {exc!r}"}]


# --- the per-submission page --------------------------------------------------------------------


@dataclass
class Inputs:
    """Everything on disk for one submission, read once."""

    out_dir: Path
    results: dict
    extra: dict
    submission: dict
    execution: dict
    comparison: dict | None
    golden: object | None
    notebook: object | None = None

    @property
    def n_layers(self) -> int:
        if self.golden is not None:
            return int(self.golden.num_layers)
        model = self.execution.get("model") or {}
        return int(model.get("num_layers") or 36)


def submission_context(out_dir: Path, results: dict, golden) -> dict:
    """The template's data for report.html."""
    extra = results.get("extra_data", {}) or {}
    inp = Inputs(out_dir=out_dir, results=results, extra=extra,
                 submission=_read_json(out_dir / "submission.json") or {"id": out_dir.name},
                 execution=_read_json(out_dir / "execution.json") or {},
                 comparison=_read_json(out_dir / "comparison.json"), golden=golden,
                 notebook=_read_notebook(out_dir / "executed.ipynb"))
    judged = inp.comparison is not None
    return {
        "has_cells": bool(inp.execution.get("cells")),
        "has_hooks": bool(inp.execution.get("hooks")),
        "has_notebook": inp.notebook is not None,
        "header": header(inp),
        "notes": _or_empty(notes, inp),
        "checks": check_rows(results),
        "facts": _or_empty(facts, inp) if judged else [],
        "judged": judged,
        "errors": _section(cell_errors, inp),
        "hooks": _section(hook_table, inp),
        "sites": _section(site_strip, inp) if judged else None,
        "projection": _section(projection_section, inp) if judged else None,
        "gif": _section(gif_section, inp),
        "diagrams": _section(diagram_section, inp),
        "answer": _section(answer_section, inp),
        "golden": {"model": getattr(golden, "model_id", "") or "", "revision": getattr(golden, "revision", "") or ""},
    }


def header(inp: Inputs) -> dict:
    """Who, the score (automated and TA-pending parts), and the run status in words."""
    checks = inp.extra.get("checks", [])
    status = inp.extra.get("status") or inp.execution.get("status") or "unknown"
    label, tone = STATUS_WORDS.get(status, (status, "warn"))
    reason = inp.extra.get("reason") or inp.execution.get("reason") or ""
    sub = inp.submission
    return {
        "id": sub.get("id") or inp.out_dir.name,
        "student_name": sub.get("student_name") or inp.extra.get("student_name"),
        "student_id": sub.get("student_id") or inp.extra.get("student_id"),
        "notebook": sub.get("notebook"),
        "late": bool(sub.get("late") or inp.extra.get("late")),
        "score": inp.results.get("score", 0),
        "max_score": sum(c["max_points"] for c in checks),
        "auto_max": sum(c["max_points"] for c in checks if not c["manual"]),
        "manual_points": sum(c["max_points"] for c in checks if c["manual"]),
        "manual_ids": [c["id"] for c in checks if c["manual"]],
        "status": status,
        "status_label": label,
        "status_tone": tone,
        "reason": _sentence(reason),
        "seconds": inp.extra.get("execution_seconds") or inp.execution.get("seconds"),
    }


def _sentence(text: str) -> str:
    """Capitalise a reason's first word unless it is a name ('broken.ipynb', 'model.layers')."""
    return text[:1].upper() + text[1:] if re.match(r"[a-z]+(?![\w.])", text or "") else (text or "")


def check_rows(results: dict) -> list[dict]:
    """The score table: one row per check with its feedback (manual checks say 'TA to grade')."""
    by_id = {c["id"]: c for c in results.get("extra_data", {}).get("checks", [])}
    reason = results.get("extra_data", {}).get("reason") or ""
    rows = []
    for t in results.get("tests", []):
        cid, _, title = t.get("name", "").partition(": ")
        meta = by_id.get(cid, {})
        manual = meta.get("manual", "manual" in t.get("tags", []))
        status = "manual" if manual else meta.get("status", t.get("status", "failed"))
        label, tone = CHECK_STATUS_WORDS.get(status, (status, "warn"))
        if status == "failed" and 0 < float(t.get("score", 0)) < float(t.get("max_score", 0)):
            label, tone = "partial", "warn"
        feedback = t.get("output", "")
        if manual and feedback.startswith(MANUAL_PREFIX):
            feedback = feedback[len(MANUAL_PREFIX):].strip()
        if feedback == f"Not graded: {reason}":  # said once above the table instead
            feedback = ""
        rows.append({"id": cid, "title": title or cid, "points": None if manual else t.get("score", 0),
                     "max_points": t.get("max_score", 0), "status_label": label, "tone": tone, "manual": manual,
                     "feedback": feedback if feedback != "Passed." else ""})
    return rows


def facts(inp: Inputs) -> list[dict]:
    """The one-line chips under the header: captures, projections, prompt, GIF, hooks."""
    extra, n = inp.extra, inp.n_layers
    out = []
    site = extra.get("captures_site")
    correct = extra.get("captures_layers_correct", 0)
    if site is None:
        out.append({"label": "captures", "value": "none found", "tone": "bad"})
    else:
        offset = extra.get("captures_layer_offset") or 0
        where = site + (f" (layer {offset:+d})" if offset else "")
        out.append({"label": "captures", "value": f"{where}; {correct}/{n} layers right",
                    "tone": "good" if correct == n else "bad"})
    proj = (inp.comparison or {}).get("projections")
    if proj:
        passed = sum(lp["passed"] for lp in proj["layers"])
        out.append({"label": "projections", "value": f"{passed}/{n} layers match",
                    "tone": "good" if passed == n and proj["n_layers"] == n else "bad"})
    else:
        out.append({"label": "projections", "value": "none found", "tone": "bad"})
    tokens = extra.get("prompt_tokens") or []
    golden_n = inp.golden.n_tokens if inp.golden is not None else None
    if extra.get("ran_golden_prompt"):
        out.append({"label": "prompt", "value": f"{golden_n or '?'} tokens, the assignment's", "tone": "good"})
    else:
        out.append({"label": "prompt", "value": (", ".join(map(str, tokens)) + " tokens") if tokens else "no forward pass",
                    "tone": "bad"})
    frames = extra.get("gif_frames")
    out.append({"label": "GIF", "value": f"{frames} frames" if frames else "none",
                "tone": "good" if frames == n else "bad"})
    hooks = extra.get("hook_sites") or {}
    out.append({"label": "hooks", "value": "; ".join(f"{c} × {w}" for w, c in hooks.items()) or "none",
                "tone": "neutral"})
    return out


def notes(inp: Inputs) -> list[dict]:
    """Things a TA should know before grading: lateness, duplicates, imports of our code, truncation."""
    out: list[dict] = []
    if inp.submission.get("late") or inp.extra.get("late"):
        out.append({"tone": "warn", "text": "Submitted late (Canvas marked the file late)."})
    for text in inp.submission.get("notes") or []:
        out.append({"tone": "warn", "text": _sentence(str(text))})
    if inp.extra.get("uses_reference"):
        mods = ", ".join(inp.extra.get("project_imports") or [])
        out.append({"tone": "bad", "text": f"The notebook imported the grader's reference code ({mods}); "
                                           "check that the work is the student's own."})
    for text in inp.execution.get("tampered") or []:
        out.append({"tone": "bad", "text": f"Interfered with the grader: {text}"})
    for cell in inp.execution.get("cells") or []:
        cut = cell.get("output_truncated_bytes") or 0
        if cut:
            out.append({"tone": "info", "text": f"The output of cell {cell['index']} was truncated "
                                                f"({_fmt_bytes(cut)} not kept)."})
    caps = (inp.comparison or {}).get("captures") or {}
    if caps.get("note"):
        out.append({"tone": "info", "text": f"Captures: {caps['note']}."})
    if (caps.get("candidates") or 1) > 1:
        out.append({"tone": "info", "text": f"{caps['candidates']} variables looked like per-layer captures; "
                                            f"`{caps['variable']}` matched best and was judged."})
    seen = {n["text"] for n in out}
    for text in inp.extra.get("notes") or inp.execution.get("notes") or []:
        if _sentence(str(text)) not in seen:
            out.append({"tone": "info", "text": _sentence(str(text))})
    for text in inp.execution.get("probe_errors") or []:
        out.append({"tone": "info", "text": f"Grader probe: {text}"})
    return out


def _fmt_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


def cell_errors(inp: Inputs) -> dict:
    """Cells that raised or timed out, with their tracebacks (colour codes stripped, length capped)."""
    cells = [c for c in inp.execution.get("cells") or [] if c.get("ename") or c.get("timed_out")]
    rows = []
    for c in cells[:MAX_ERROR_CELLS]:
        tb = strip_ansi("\n".join(c.get("traceback") or []))
        if len(tb) > MAX_TRACEBACK_CHARS:
            tb = tb[:MAX_TRACEBACK_CHARS // 3] + "\n\n[… traceback shortened …]\n\n" + tb[-2 * MAX_TRACEBACK_CHARS // 3:]
        title = f"{c.get('ename') or 'Timeout'}: {strip_ansi(c.get('evalue') or '')}" if c.get("ename") else "timed out"
        rows.append({"index": c.get("index"), "count": c.get("execution_count"), "title": title[:300],
                     "seconds": c.get("seconds"), "timed_out": c.get("timed_out", False), "traceback": tb})
    return {"rows": rows, "more": max(0, len(cells) - MAX_ERROR_CELLS),
            "n_cells": len(inp.execution.get("cells") or [])}


# --- Part 3 ---------------------------------------------------------------------------------


def hook_table(inp: Inputs) -> dict:
    """Hook registrations grouped by place (module path with N for the layer), plus every hook."""
    hooks = inp.execution.get("hooks") or []
    groups: dict[tuple, dict] = {}
    for h in hooks:
        module = h.get("module") or ""
        parsed = parse_module_path(module)
        kind = h.get("kind", "forward")
        generic, rel = (module, None)
        if parsed is not None:
            generic, rel = "model.layers.N" + (f".{parsed[1]}" if parsed[1] else ""), parsed[1]
        origin = h.get("origin", "student")
        key = (generic, h.get("module_type"), kind, bool(h.get("with_kwargs")), bool(h.get("removed")), h.get("cell"),
               origin)
        g = groups.setdefault(key, {"module": generic, "module_type": h.get("module_type") or "", "kind": kind,
                                    "with_kwargs": key[3], "removed": key[4], "cell": h.get("cell"), "count": 0,
                                    "layers": [], "reads": "", "origin": origin})
        g["count"] += 1
        if parsed is not None:
            g["layers"].append(parsed[0])
            readable = sites_readable_by(rel, kind)
            g["reads"] = ", ".join(readable) or "nothing of this layer's"
            g["reads_target"] = TARGET_SITE in readable
    rows = []
    for g in groups.values():
        g["layer_text"] = layer_ranges(g["layers"]) if g["layers"] else "–"
        g.setdefault("reads_target", False)
        g["reads"] = g["reads"] or "not a decoder layer module"
        rows.append(g)
    rows.sort(key=lambda g: (g["cell"] if g["cell"] is not None else 1e9, g["module"]))
    return {"groups": rows, "all": hooks, "total": len(hooks)}


def _site_of(ls: dict | None) -> tuple[str, int]:
    if ls is None:
        return "missing", 0
    offset = (ls["matched_layer"] - ls["layer"]) if ls.get("matched_layer") is not None else 0
    return ls.get("site") or "unknown", offset


def site_strip(inp: Inputs) -> dict:
    """For each layer: which site the captured tensor equals (green: resid_pre at the right layer)."""
    caps = (inp.comparison or {}).get("captures")
    n = inp.n_layers
    if not caps:
        return {"present": False, "cells": [], "legend": []}
    by_layer = {ls["layer"]: ls for ls in caps["layers"] if 0 <= ls["layer"] < n}
    outside = [ls["key"] for ls in caps["layers"] if not 0 <= ls["layer"] < n]
    cells, used = [], Counter()
    for layer in range(n):
        ls = by_layer.get(layer)
        site, offset = _site_of(ls)
        correct = site == TARGET_SITE and offset == 0
        css = "site-ok" if correct else f"site-{site}"
        used[site] += 1
        cells.append({"layer": layer, "short": SITE_SHORT.get(site, site[:5]) + (f"{offset:+d}" if offset else ""),
                      "css": css, "correct": correct, "title": _site_title(layer, ls, site, offset)})
    legend = [{"site": s, "css": "site-ok" if s == TARGET_SITE else f"site-{s}", "short": SITE_SHORT.get(s, s),
               "count": c} for s, c in used.most_common()]
    n_correct = sum(c["correct"] for c in cells)
    return {"present": True, "cells": cells, "legend": legend, "n_correct": n_correct, "n_layers": n,
            "variable": caps.get("variable"), "layout": caps.get("layout"), "dtype": caps.get("dtype"),
            "key_base": caps.get("key_base"), "reference": caps.get("reference"), "outside": outside,
            "columns": min(n, 18)}


def _site_title(layer: int, ls: dict | None, site: str, offset: int) -> str:
    if ls is None:
        return f"layer {layer}: not captured"
    where = describe(site, layer + offset) if site in SITES else f"{SITE_EXTRA_WORDS.get(site, site)}"
    parts = [f"layer {layer} (key {ls['key']}), shape {ls.get('shape')}: {where}"]
    if ls.get("error") is not None:
        parts.append(f"median relative error {ls['error']:.2g} to {ls.get('nearest')}")
    if ls.get("target_error") is not None and site != TARGET_SITE:
        parts.append(f"{ls['target_error']:.2g} to resid_pre.{layer}")
    return "; ".join(parts)


# --- Part 5 ---------------------------------------------------------------------------------


def _sphere_layers(n: int) -> list[int]:
    return sorted({0, n // 2, n - 1})


def projection_section(inp: Inputs) -> dict:
    """Per-layer angle plot, layer notes, and student-vs-reference spheres at the first/middle/last layer."""
    from grader.judge.compare import PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG
    from grader.report import plots

    proj = (inp.comparison or {}).get("projections")
    if not proj:
        return {"present": False}
    n = inp.n_layers
    layers = [plots.LayerAngles(lp["layer"], lp["median_deg"], lp["p95_deg"], lp["passed"]) for lp in proj["layers"]]
    chart = plots.projection_errors(layers, n, PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG, proj["reference"])
    panels, sphere_note = sphere_panels(inp, proj)
    notes_by_text: dict[str, list[int]] = {}
    for lp in proj["layers"]:
        if lp.get("note"):
            notes_by_text.setdefault(lp["note"], []).append(lp["layer"])
    failed = [lp["layer"] for lp in proj["layers"] if not lp["passed"]]
    dev = proj.get("unit_norm_max_dev")
    return {
        "present": True, "variable": proj["variable"], "layout": proj["layout"], "n_layers": proj["n_layers"],
        "expected_layers": n, "shape_ok": proj["shape_ok"], "shapes": proj.get("shapes") or [],
        "unit_norm_dev": None if dev is None else f"{dev:.2g}", "unit_norm_ok": dev is not None and dev <= proj["unit_norm_tol"],
        "unit_norm_tol": f"{proj['unit_norm_tol']:g}", "reference": proj["reference"],
        "passed": sum(lp["passed"] for lp in proj["layers"]), "failed_text": layer_ranges(failed),
        "median_threshold": PROJECTION_MEDIAN_DEG, "p95_threshold": PROJECTION_P95_DEG,
        "chart": chart, "layer_notes": [{"layers": layer_ranges(ls), "text": t} for t, ls in notes_by_text.items()],
        "spheres": plots.spheres(panels) if panels else None, "sphere_note": sphere_note,
        "sphere_layers": [p.layer for p in panels],
    }


def _load_arrays(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Only the named arrays of extracted.npz (never pickles)."""
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in keys if k in z.files}


def sphere_panels(inp: Inputs, proj: dict) -> tuple[list, str]:
    """The student's sphere points (sign-aligned to the golden) and the golden's, at three layers."""
    from grader.judge.compare import _as_3xn
    from grader.report.plots import SpherePanel
    from grader.spec.geometry import align_signs, to_sphere

    golden = inp.golden
    n = inp.n_layers
    key_of = {lp["layer"]: lp["key"] for lp in proj["layers"]}
    verdict = {lp["layer"]: lp for lp in proj["layers"]}
    wanted = _sphere_layers(n)
    names = {layer: f"projections.{proj['variable']}.{key_of[layer]}" for layer in wanted if layer in key_of}
    arrays = _load_arrays(inp.out_dir / "extracted.npz", list(names.values()))
    panels, mismatched = [], False
    for layer in wanted:
        ref = np.asarray(golden.projections[layer], np.float64) if golden is not None else None
        student = None
        if names.get(layer) in arrays:
            pts, _ = _as_3xn(np.asarray(arrays[names[layer]]))
            if pts is not None and np.isfinite(pts).all():
                student = to_sphere(pts).astype(np.float64)
                if ref is not None and student.shape == ref.shape:
                    student, _ = align_signs(ref, student)
                elif ref is not None:
                    mismatched = True
        lp = verdict.get(layer) or {}
        caption = f"median {_fmt_deg(lp['median_deg'])}" if lp.get("median_deg") is not None else ""
        panels.append(SpherePanel(layer=layer, student=student, reference=ref, caption=caption))
    note = ("Colours follow token position (dark = first token) in both rows, so a matching sphere has matching "
            "colours in the same places. Student points are normalised for display and each component's sign is "
            "flipped to agree with the reference.")
    caps = (inp.comparison or {}).get("captures") or {}
    wrong_site = any(not (ls.get("site") == TARGET_SITE and ls.get("matched_layer") == ls.get("layer"))
                     for ls in caps.get("layers") or [])
    if proj["reference"] == "own_captures" and wrong_site:
        note += (" The reference row is the assignment's answer (resid_pre); the angle chart above compares with the "
                 "PCA of the student's own captures instead, so a wrong hook site does not cost Part 5 twice.")
    if mismatched:
        note += " The student's token count differs from the reference's, so the signs could not be aligned."
    return panels, note


def gif_section(inp: Inputs) -> dict:
    """tokens.gif inline (or its first frame when it is too large), with its frame count."""
    from grader.judge.evidence import gif_info
    from grader.report import plots

    files_dir = inp.out_dir / "files"
    info = gif_info(files_dir, inp.execution.get("files") or [])
    if info.path is None:
        return {"present": False, "error": info.error}
    size = info.path.stat().st_size
    out = {"present": True, "name": info.path.name, "frames": info.frames, "expected": inp.n_layers,
           "size": list(info.size) if info.size else None, "bytes": _fmt_bytes(size), "origin": info.origin,
           "error": info.error, "first_frame_only": False, "src": None,
           "display_width": min(max(info.size[0] if info.size else 360, 260), 360)}
    if info.error:
        return out
    if size <= MAX_INLINE_GIF_BYTES:
        out["src"] = "data:image/gif;base64," + base64.b64encode(info.path.read_bytes()).decode("ascii")
    else:
        out["src"], out["first_frame_only"] = plots.first_frame_png(info.path), True
    return out


def _image_uri(path: Path) -> str | None:
    mime = IMAGE_MIME.get(path.suffix.lower())
    if mime is None:
        return None
    size = path.stat().st_size
    if size > MAX_INLINE_IMAGE_BYTES:
        if mime == "image/svg+xml":
            return None
        from grader.report.plots import first_frame_png

        return first_frame_png(path, max_side=900)
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _diagram_candidates(inp: Inputs, files_dir: Path) -> list[Path]:
    """Files worth showing as the diagram: attachments and names with 'diagram' first, never the GIF."""
    from grader.judge.evidence import gif_info

    if not files_dir.is_dir():
        return []
    gif = gif_info(files_dir, inp.execution.get("files") or []).name
    origin = {f.get("name"): f.get("origin") for f in inp.execution.get("files") or []}
    paths = [p for p in files_dir.iterdir()
             if p.is_file() and p.name != gif and not p.name.startswith("frame_")
             and (p.suffix.lower() in IMAGE_MIME or p.suffix.lower() == ".pdf")]
    return sorted(paths, key=lambda p: ("diagram" not in p.name.lower(), origin.get(p.name) != "attachment", p.name))


def diagram_section(inp: Inputs) -> dict:
    """Images for the Part 2 diagram: files the notebook wrote or the student attached, and images
    embedded in markdown cells (at most MAX_DIAGRAM_IMAGES inline); links to outside images are
    listed as text, never loaded."""
    from grader.judge.evidence import diagrams

    files_dir = inp.out_dir / "files"
    named = diagrams(inp.notebook, files_dir, inp.submission.get("attachments") or [])
    images, listed = [], []
    shown: set[str] = set()
    for path in _diagram_candidates(inp, files_dir):
        size = _fmt_bytes(path.stat().st_size)
        uri = _image_uri(path) if path.suffix.lower() in IMAGE_MIME and len(images) < MAX_DIAGRAM_IMAGES else None
        if uri:
            images.append({"name": path.name, "src": uri, "bytes": size})
        elif path.suffix.lower() == ".pdf":
            listed.append({"name": path.name, "href": "files/" + urllib.parse.quote(path.name),
                           "text": f"{path.name} (PDF, {size}): open it from the files folder"})
        else:
            listed.append({"name": path.name, "href": None, "text": f"{path.name} ({size}, not shown inline)"})
        shown.add(path.name)
    for cell_index, name, uri in _markdown_attachments(inp.notebook)[:MAX_DIAGRAM_IMAGES]:
        images.append({"name": f"{name} (embedded in markdown cell {cell_index})", "src": uri, "bytes": ""})
        shown.add(f"{name} (embedded in a markdown cell)")
    for name in named:
        if name not in shown and Path(name).name not in shown:
            listed.append({"name": name, "href": None, "text": name})
    return {"images": images, "listed": listed}


def _markdown_attachments(nb) -> list[tuple[int, str, str]]:
    """(cell index, name, data URI) for images attached to markdown cells of the executed notebook."""
    out = []
    for i, cell in enumerate(nb.cells if nb is not None else []):
        if cell.get("cell_type") != "markdown":
            continue
        for name, bundle in (cell.get("attachments") or {}).items():
            for mime in ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"):
                data = bundle.get(mime) if isinstance(bundle, dict) else None
                if isinstance(data, list):
                    data = "".join(data)
                if isinstance(data, str) and len(data) <= MAX_INLINE_IMAGE_BYTES * 4 // 3:
                    if mime == "image/svg+xml" and not re.fullmatch(r"[A-Za-z0-9+/=\s]+", data):
                        data = base64.b64encode(data.encode()).decode("ascii")  # svg is stored as text
                    out.append((i, str(name), f"data:{mime};base64,{re.sub(r'[^A-Za-z0-9+/=]', '', data)}"))
                    break
    return out


def answer_section(inp: Inputs) -> dict:
    """The student's explanation (escaped, preformatted) next to the reference clustering metrics."""
    from grader.judge.evidence import answer_text
    from grader.report import plots

    text = inp.extra["answer"] if "answer" in inp.extra else (
        answer_text(inp.notebook) if inp.notebook is not None else None)
    golden = inp.golden
    metrics = list(getattr(golden, "metrics", None) or [])
    n = len(metrics)
    rows = []
    for layer in _sphere_layers(n) if n else []:
        m = metrics[layer]
        rows.append({"layer": layer, "cosine": f"{m['mean_pairwise_cosine']:.3f}",
                     "moved": "–" if m.get("mean_angle_moved_deg") is None else f"{m['mean_angle_moved_deg']:.1f}°"})
    chart = plots.reference_metrics(metrics, _sphere_layers(n)) if n else None
    return {"text": text, "rows": rows, "chart": chart}


# --- the class index ----------------------------------------------------------------------------


def _top_mistakes(labels: list[str], limit: int = 3) -> tuple[list[str], int]:
    """Specific labels ('captures: mlp_out', 'status: timeout') before the generic 'failed <check>'."""
    ordered = sorted(labels, key=lambda s: s.startswith("failed "))
    return ordered[:limit], max(0, len(ordered) - limit)


def index_row(out_root: Path, row: dict) -> dict:
    res, sub = row["results"], row.get("submission") or {}
    extra = res.get("extra_data", {}) or {}
    checks = extra.get("checks", [])
    status = extra.get("status", "unknown")
    label, tone = STATUS_WORDS.get(status, (status, "warn"))
    top, more = _top_mistakes(list(extra.get("mistakes") or []))
    has_report = (out_root / row["id"] / "report.html").is_file()
    return {
        "id": row["id"], "href": urllib.parse.quote(row["id"]) + "/report.html" if has_report else None,
        "student": sub.get("student_name") or extra.get("student_name") or "",
        "student_id": sub.get("student_id") or extra.get("student_id") or "",
        "late": bool(sub.get("late") or extra.get("late")), "status": status,
        "status_label": STATUS_SHORT.get(status, status), "status_words": label,
        "tone": tone, "score": float(res.get("score", 0)),
        "max_score": sum(c["max_points"] for c in checks), "mistakes": top, "more_mistakes": more,
        "n_mistakes": len(extra.get("mistakes") or []), "reason": extra.get("reason") or "",
    }


def histogram_svg(scores: list[float], max_score: float, bins: int = 10) -> dict:
    """Bars for an inline SVG score histogram (bins of max_score / bins points)."""
    width, height, pad = 520, 210, 24
    max_score = max_score or max(scores, default=100) or 100
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, max(0, int(s / max_score * bins)))] += 1
    top = max(counts, default=0) or 1
    bar_w = (width - 2 * pad) / bins
    bars = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        lo, hi = max_score * i / bins, max_score * (i + 1) / bins
        bars.append({"x": pad + i * bar_w + 1, "y": height - pad - h, "w": bar_w - 2, "h": h, "count": c,
                     "label": f"{lo:g}", "title": f"{lo:g}–{hi:g}{' (incl.)' if i == bins - 1 else ''}: {c}"})
    return {"width": width, "height": height, "pad": pad, "bars": bars, "bar_w": bar_w,
            "max_label": f"{max_score:g}"}


def index_context(out_root: Path, rows: list[dict]) -> dict:
    """The template's data for index.html."""
    table = [index_row(out_root, r) for r in rows]
    scores = [r["score"] for r in table]
    max_score = max((r["max_score"] for r in table), default=100)
    statuses = Counter(r["status"] for r in table)
    mistakes = Counter(m for r in rows for m in (r["results"].get("extra_data", {}) or {}).get("mistakes") or [])
    top = max(mistakes.values(), default=1)
    return {
        "rows": table,
        "n": len(table),
        "stats": {"mean": f"{statistics.fmean(scores):.1f}" if scores else "–",
                  "median": f"{statistics.median(scores):g}" if scores else "–",
                  "min": f"{min(scores):g}" if scores else "–", "max": f"{max(scores):g}" if scores else "–",
                  "max_score": f"{max_score:g}", "late": sum(r["late"] for r in table)},
        "statuses": [{"status": s, "label": STATUS_WORDS.get(s, (s, "warn"))[0], "tone": STATUS_WORDS.get(s, (s, "warn"))[1],
                      "count": c} for s, c in statuses.most_common()],
        "mistakes": [{"label": m, "count": c, "pct": round(100 * c / top)}
                     for m, c in mistakes.most_common(MAX_INDEX_MISTAKES)],
        "more_mistakes": max(0, len(mistakes) - MAX_INDEX_MISTAKES),
        "histogram": histogram_svg(scores, max_score),
    }
