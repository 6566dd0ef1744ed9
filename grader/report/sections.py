"""The report's sections for Part 3, Part 5 and the TA's evidence, from the judge's Judgement.

Each function turns verdicts into what a template shows (words, colours, images); none decides
anything the judge did not.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.judge.evidence import remote_images
from grader.judge.hooks import layer_ranges
from grader.judge.projections import PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG
from grader.judge.verdicts import Judgement
from grader.judge.rubric.late import LatePolicy
from grader.report.render import (IMAGE_MIME, MAX_INLINE_IMAGE_BYTES, answer_html, fmt_bytes, fmt_deg, image_uri,
                                   shown_traceback, strip_ansi)
from grader.spec.sites import SITES, TARGET_SITE, describe

MAX_INLINE_GIF_BYTES = 5 * 1024 * 1024  # larger GIFs are shown as their first frame
MAX_DIAGRAM_IMAGES = 6  # images shown inline in the diagram section; the rest are listed
MAX_TRACEBACK_CHARS = 6000
MAX_ERROR_CELLS = 12
SITE_SHORT = {"resid_pre": "pre", "ln1_out": "ln1", "attn_out": "attn", "resid_mid": "mid", "ln2_out": "ln2",
              "mlp_out": "mlp", "resid_post": "post", "unknown": "?", "shape_mismatch": "shape",
              "generate_step": "gen", "missing": "–"}
SITE_EXTRA_WORDS = {"unknown": "matches none of the seven activations of this layer or the layers beside it",
                    "shape_mismatch": "has the wrong shape for this prompt",
                    "generate_step": "holds a single token (a generate() decoding step)",
                    "missing": "was not captured"}


@dataclass
class Page:
    """What one report page is built from."""

    out_dir: Path
    grade: object  # a Grade, or a Result read back from results.json
    judgement: Judgement
    late: LatePolicy = field(default_factory=LatePolicy)

    @property
    def n_layers(self) -> int:
        return int(self.judgement.golden.num_layers)

    @property
    def family(self):
        from grader.spec.pack import load_pack

        return (self.judgement.assignment or load_pack()).family


def cell_error_rows(cells) -> dict:
    """Cells that raised or timed out, named as the executed notebook shows them ("In [7]"), with their
    tracebacks as the student reads them (render.shown_traceback: no grader frames, short library paths,
    length capped)."""
    failed = [c for c in cells if c.ename or c.timed_out]
    rows = []
    for c in failed[:MAX_ERROR_CELLS]:
        tb = shown_traceback(c.traceback, MAX_TRACEBACK_CHARS)
        title = f"{c.ename or 'Timeout'}: {strip_ansi(c.evalue or '')}" if c.ename else "timed out"
        rows.append({"index": c.index, "label": c.label, "title": title[:300],
                     "seconds": c.seconds, "timed_out": c.timed_out, "traceback": tb})
    return {"rows": rows, "more": max(0, len(failed) - MAX_ERROR_CELLS), "n_cells": len(cells)}


# --- Part 3 ---------------------------------------------------------------------------------


def hook_table(page: Page) -> dict:
    """Hook registrations grouped by place (module path with N for the layer), plus every hook; `cells`
    names the cell each was registered in as the executed notebook shows it ("In [7]")."""
    hooks = page.judgement.execution.hooks or []
    cells = {c.index: c.label for c in page.judgement.execution.cells}
    return {"groups": page.judgement.hook_groups, "all": hooks, "total": len(hooks), "cells": cells}


def site_strip(page: Page) -> dict:
    """For each layer: which site the captured tensor equals (green: resid_pre at the right layer)."""
    caps = page.judgement.comparison.captures
    n = page.n_layers
    if not caps:
        return {"present": False, "cells": [], "legend": []}
    by_layer = {ls.layer: ls for ls in caps.layers if 0 <= ls.layer < n}
    cells, used = [], Counter()
    for layer in range(n):
        ls = by_layer.get(layer)
        site = "missing" if ls is None else (ls.site or "unknown")
        offset = (ls.matched_layer - ls.layer) if ls is not None and ls.matched_layer is not None else 0
        correct = ls is not None and ls.correct
        used[site] += 1
        cells.append({"layer": layer, "short": SITE_SHORT.get(site, site[:5]) + (f"{offset:+d}" if offset else ""),
                      "css": "site-ok" if correct else f"site-{site}", "correct": correct,
                      "title": _site_title(layer, ls, site, offset, page.family)})
    legend = [{"site": s, "css": "site-ok" if s == TARGET_SITE else f"site-{s}", "short": SITE_SHORT.get(s, s),
               "count": c} for s, c in used.most_common()]
    return {"present": True, "cells": cells, "legend": legend, "n_correct": sum(c["correct"] for c in cells),
            "n_layers": n, "variable": caps.variable, "layout": caps.layout, "dtype": caps.dtype,
            "key_base": caps.key_base, "reference": caps.reference,
            "outside": [ls.key for ls in caps.layers if not 0 <= ls.layer < n], "columns": min(n, 18)}


def _site_title(layer: int, ls, site: str, offset: int, family) -> str:
    if ls is None:
        return f"layer {layer}: not captured"
    where = describe(site, layer + offset, family) if site in SITES else f"{SITE_EXTRA_WORDS.get(site, site)}"
    parts = [f"layer {layer} (key {ls.key}), shape {ls.shape}: {where}"]
    if ls.error is not None:
        parts.append(f"median relative error {ls.error:.2g} to {ls.nearest}")
    if ls.target_error is not None and site != TARGET_SITE:
        parts.append(f"{ls.target_error:.2g} to resid_pre.{layer}")
    return "; ".join(parts)


# --- Part 5 ---------------------------------------------------------------------------------


def projection_section(page: Page) -> dict:
    """Per-layer angle plot, layer notes, and student-vs-reference spheres at the first/middle/last layer."""
    from grader.report import plots

    proj = page.judgement.comparison.projections
    if not proj:
        return {"present": False}
    n = page.n_layers
    chart = plots.projection_errors(proj.layers, n, PROJECTION_MEDIAN_DEG, PROJECTION_P95_DEG, proj.reference)
    notes_by_text: dict[str, list[int]] = {}
    for lp in proj.layers:
        if lp.note:
            notes_by_text.setdefault(lp.note, []).append(lp.layer)
    panels = page.judgement.spheres
    captions = sphere_captions(page, panels, proj.reference)
    dev = proj.unit_norm_max_dev
    return {
        "present": True, "variable": proj.variable, "layout": proj.layout, "n_layers": proj.n_layers,
        "expected_layers": n, "shape_ok": proj.shape_ok, "shapes": proj.shapes or [],
        "unit_norm_dev": None if dev is None else f"{dev:.2g}", "unit_norm_ok": dev is not None and dev <= proj.unit_norm_tol,
        "unit_norm_tol": f"{proj.unit_norm_tol:g}", "reference": proj.reference,
        "passed": sum(lp.passed for lp in proj.layers), "failed_text": layer_ranges([lp.layer for lp in proj.layers
                                                                                     if not lp.passed]),
        "median_threshold": PROJECTION_MEDIAN_DEG, "p95_threshold": PROJECTION_P95_DEG,
        "chart": chart, "layer_notes": [{"layers": layer_ranges(ls), "text": t} for t, ls in notes_by_text.items()],
        "spheres": plots.spheres(panels, [c["short"] for c in captions]) if panels else None,
        "sphere_captions": [c["long"] for c in captions if c["long"]],
        "sphere_note": page.judgement.sphere_note, "sphere_layers": [p.layer for p in panels],
    }


def sphere_captions(page: Page, panels, reference: str) -> list[dict]:
    """Per sphere panel, what its number is compared with: the verdict's median token angle (to the PCA of
    the student's own captures, error carried forward, or to the reference), and, when the verdict was
    against their own captures, the median angle to the reference row drawn below (the assignment's answer),
    so a wrong hook site cannot read as a match. {"short": under the sphere, "long": a sentence for the page}."""
    from grader.spec.geometry import token_angles

    caps = page.judgement.comparison.captures
    by_layer = {ls.layer: ls for ls in caps.layers} if caps else {}
    out = []
    for p in panels:
        short, long = [], []
        if p.median_deg is not None and reference == "own_captures":
            ls = by_layer.get(p.layer)
            site = "" if ls is None or ls.correct else (ls.site or "not resid_pre")
            short.append(f"{fmt_deg(p.median_deg)} from own-capture PCA" + (f" ({site})" if site else ""))
            long.append(f"{fmt_deg(p.median_deg)} to the PCA of the student's own captures"
                        + (f" ({site}, not resid_pre)" if site else "") + ", which Part 5 is judged against")
        elif p.median_deg is not None:
            short.append(f"{fmt_deg(p.median_deg)} from the reference")
            long.append(f"{fmt_deg(p.median_deg)} to the reference drawn below, which Part 5 is judged against")
        if reference == "own_captures" and p.student is not None and p.reference is not None \
                and p.student.shape == p.reference.shape:
            to_ref = fmt_deg(float(np.median(token_angles(p.reference, p.student))))  # [N] angles -> median
            short.append(f"{to_ref} from the reference below")
            long.append(f"{to_ref} to the reference drawn below (resid_pre: the assignment's answer)")
        out.append({"short": "\n".join(short),
                    "long": f"Layer {p.layer}, median token angle: " + "; ".join(long) + "." if long else ""})
    return out


def gif_section(page: Page) -> dict:
    """tokens.gif inline (or its first frame when it is too large), with its frame count."""
    from grader.report import plots

    info = page.judgement.evidence.gif
    if info.path is None:
        return {"present": False, "error": info.error}
    size = info.path.stat().st_size
    out = {"present": True, "name": info.path.name, "frames": info.frames, "expected": page.n_layers,
           "size": list(info.size) if info.size else None, "bytes": fmt_bytes(size), "origin": info.origin,
           "error": info.error, "first_frame_only": False, "src": None, "note": blank_labels_note(page),
           "display_width": min(max(info.size[0] if info.size else 360, 260), 360)}
    if info.error:
        return out
    if size <= MAX_INLINE_GIF_BYTES:
        out["src"] = "data:image/gif;base64," + base64.b64encode(info.path.read_bytes()).decode("ascii")
    else:
        out["src"], out["first_frame_only"] = plots.first_frame_png(info.path), True
    return out


def blank_labels_note(page: Page) -> str | None:
    """Why the grader's frames have no labels (grader/execute/fastplot.py drew them), or None."""
    if page.judgement.evidence.gif.origin == "attachment":
        return None  # the GIF the student attached: not drawn by the grader
    n = ((page.judgement.execution.environment or {}).get("counts") or {}).get("plot.labels", 0)
    if not n:
        return None
    own = page.judgement.evidence.submitted.gif
    return (f"The grader re-ran the plotting cell with its 3-D token labels drawn blank ({n} labels, to grade "
            "faster; frame count and size are those of a normal run; `grade --full-render` draws them). "
            + (f"The student's own {own.name} is under \"What the student saw\"." if own is not None
               else "The student submitted no GIF of their own."))


# --- the TA's evidence ------------------------------------------------------------------------


def _diagram_candidates(page: Page, files_dir: Path) -> list[Path]:
    """Files worth showing as the diagram: attachments and names with 'diagram' first, never the GIF."""
    if not files_dir.is_dir():
        return []
    gif = page.judgement.evidence.gif.name
    origin = {f.get("name"): f.get("origin") for f in page.judgement.execution.files or []}
    paths = [p for p in files_dir.iterdir()
             if p.is_file() and p.name != gif and not p.name.startswith("frame_")
             and (p.suffix.lower() in IMAGE_MIME or p.suffix.lower() == ".pdf")]
    return sorted(paths, key=lambda p: ("diagram" not in p.name.lower(), origin.get(p.name) != "attachment", p.name))


def diagram_section(page: Page) -> dict:
    """Images for the Part 2 diagram: files the notebook wrote or the student attached, and images
    embedded in markdown cells (at most MAX_DIAGRAM_IMAGES inline); links to outside images are
    listed as text, never loaded."""
    files_dir = page.out_dir / "files"
    images, listed = [], []
    shown: set[str] = set()
    for path in _diagram_candidates(page, files_dir):
        size = fmt_bytes(path.stat().st_size)
        uri = image_uri(path) if path.suffix.lower() in IMAGE_MIME and len(images) < MAX_DIAGRAM_IMAGES else None
        if uri:
            images.append({"name": path.name, "src": uri, "bytes": size})
        elif path.suffix.lower() == ".pdf":
            listed.append({"name": path.name, "href": "files/" + urllib.parse.quote(path.name),
                           "text": f"{path.name} (PDF, {size}): open it from the files folder"})
        else:
            listed.append({"name": path.name, "href": None, "text": f"{path.name} ({size}, not shown inline)"})
        shown.add(path.name)
    for cell_index, name, uri in markdown_attachments(page.judgement.notebook)[:MAX_DIAGRAM_IMAGES]:
        images.append({"name": f"{name} (embedded in markdown cell {cell_index})", "src": uri, "bytes": ""})
        shown.add(f"{name} (embedded in a markdown cell)")
    for cell_index, uri in pasted_images(page.judgement.notebook)[:MAX_DIAGRAM_IMAGES]:
        images.append({"name": f"an image pasted into markdown cell {cell_index}", "src": uri, "bytes": ""})
        shown.add(f"an image pasted into markdown cell {cell_index}")
    for name in page.judgement.evidence.diagrams:
        if name not in shown and Path(name).name not in shown:
            listed.append({"name": name, "href": None, "text": name})
    for url in remote_images(page.judgement.notebook):
        listed.append({"name": url, "href": None, "text": f"{url} (a remote image linked from a markdown cell: "
                                                          "not loaded, not counted as a diagram)"})
    return {"images": images, "listed": listed}


def markdown_attachments(nb) -> list[tuple[int, str, str]]:
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


PASTED_IMAGE = re.compile(r"!\[[^\]]*\]\((data:image/(?:png|jpeg|gif|webp);base64,)([A-Za-z0-9+/=\s]+)\)")


def pasted_images(nb) -> list[tuple[int, str]]:
    """(cell index, data URI) of images pasted into markdown cells as data URIs (Colab stores them so)."""
    out = []
    for i, cell in enumerate(nb.cells if nb is not None else []):
        if cell.get("cell_type") == "markdown":
            for m in PASTED_IMAGE.finditer(cell.source):
                if len(m.group(2)) <= MAX_INLINE_IMAGE_BYTES * 4 // 3:
                    out.append((i, m.group(1) + re.sub(r"\s", "", m.group(2))))
    return out


def answer_section(page: Page) -> dict:
    """The student's explanation (their markdown rendered, raw HTML escaped, without a label they typed)
    beside what they saw on Colab (their GIF and the images stored in the notebook they submitted) and a
    real trained model's dynamics on the prompt.
    The miniature's own metrics are never shown here: it is not what Qwen3-4B does."""
    view = page.judgement.evidence.submitted
    gif = None
    if view.gif is not None and view.gif.stat().st_size <= MAX_INLINE_GIF_BYTES:
        gif = "data:image/gif;base64," + base64.b64encode(view.gif.read_bytes()).decode("ascii")
    return {"text": page.grade.summary.answer, "html": answer_html(page.grade.summary.answer), "submitted_gif": gif,
            "submitted_gif_name": view.gif.name if view.gif else None,
            "submitted_images": [{"cell": c, "src": src} for c, src in view.images],
            "stored_outputs": view.stored_outputs, "dynamics": real_model_panel()}


def real_model_panel() -> dict | None:
    """A real trained model's residual-stream dynamics on the assignment's prompt (computed offline once,
    shipped as grader/report/dynamics.json), labelled with the model it came from; None without it."""
    try:
        from grader.report import dynamics
    except ImportError:
        return None
    panel = dynamics.load_panel()
    return {"model": dynamics.title(panel), "caption": dynamics.caption(panel), "chart": dynamics.draw_panel(panel),
            "rows": dynamics.summary_rows(panel)}
