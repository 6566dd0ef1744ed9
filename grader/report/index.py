"""index.html: the class at a glance, from every result in an output folder.

Score histogram (inline SVG), counts per status and per mistake class, and one sortable row per
submission linking to its report. The only script on the page is templates/sort.js, allowed by hash.
"""

from __future__ import annotations

import statistics
import urllib.parse
from collections import Counter
from pathlib import Path

from grader.io import write_atomic
from grader.report.render import TEMPLATES, render
from grader.report.totals import Total
from grader.status import describe

MAX_INDEX_MISTAKES = 14  # mistake classes listed on the index; the rest are summed up


def write_index(out_root: Path, rows: list[Total], similar: dict[str, list[str]] | None = None) -> Path:
    """Write out_root/index.html for the class; returns its path."""
    path = Path(out_root) / "index.html"
    write_atomic(path, render("index.html", index_context(Path(out_root), rows, similar or {}),
                              script=(TEMPLATES / "sort.js").read_text()))
    return path


def _top_mistakes(labels: list[str], limit: int = 3) -> tuple[list[str], int]:
    """Specific labels ('captures: mlp_out', 'status: timeout') before the generic 'failed <check>'."""
    ordered = sorted(labels, key=lambda s: s.startswith("failed "))
    return ordered[:limit], max(0, len(ordered) - limit)


def index_row(out_root: Path, total: Total, similar: list[str]) -> dict:
    r = total.result
    summary, sub = r.summary, r.submission
    label, tone, short = describe(summary.status)
    top, more = _top_mistakes(list(summary.mistakes or []))
    has_report = (out_root / r.id / "report.html").is_file()
    return {
        "id": r.id, "href": urllib.parse.quote(r.id) + "/report.html" if has_report else None,
        "student": sub.student_name or summary.student_name or "",
        "student_id": sub.student_id or summary.student_id or "",
        "late": bool(sub.late or summary.late), "status": summary.status, "status_label": short,
        "status_words": label, "tone": tone, "score": total.score, "max_score": total.possible, "mistakes": top,
        "more_mistakes": more, "n_mistakes": len(summary.mistakes or []), "reason": summary.reason or "",
        "automated": total.automated, "manual": total.manual_points, "pending": total.pending,
        "automatic": total.automatic, "manual_note": total.manual_note,
        "late_penalty": total.late_penalty, "similar": similar,
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


def index_context(out_root: Path, rows: list[Total], similar: dict[str, list[str]]) -> dict:
    """The template's data for index.html."""
    table = [index_row(out_root, t, similar.get(t.result.id, [])) for t in rows]
    scores = [r["score"] for r in table]
    max_score = max((r["max_score"] for r in table), default=100)
    statuses = Counter(r["status"] for r in table)
    mistakes = Counter(m for t in rows for m in t.result.summary.mistakes or [])
    top = max(mistakes.values(), default=1)
    return {
        "rows": table,
        "n": len(table),
        "stats": {"mean": f"{statistics.fmean(scores):.1f}" if scores else "–",
                  "median": f"{statistics.median(scores):g}" if scores else "–",
                  "min": f"{min(scores):g}" if scores else "–", "max": f"{max(scores):g}" if scores else "–",
                  "max_score": f"{max_score:g}", "late": sum(r["late"] for r in table)},
        "statuses": [{"status": s, "label": describe(s)[0], "tone": describe(s)[1], "count": c}
                     for s, c in statuses.most_common()],
        "mistakes": [{"label": m, "count": c, "pct": round(100 * c / top)}
                     for m, c in mistakes.most_common(MAX_INDEX_MISTAKES)],
        "more_mistakes": max(0, len(mistakes) - MAX_INDEX_MISTAKES),
        "histogram": histogram_svg(scores, max_score),
        "pending": sum(len(r["pending"]) for r in table),
        "similar_pairs": sorted({tuple(sorted((a, b))) for a, bs in similar.items() for b in bs}),
    }
