"""HTML: one self-contained report per submission, and the class index (minimal first version)."""

from __future__ import annotations

import html
from pathlib import Path

from grader.records import write_atomic


def write_submission_report(out_dir: Path, results: dict, golden) -> Path:
    rows = "".join(
        f"<tr><td>{html.escape(t['name'])}</td><td>{t['score']:g}/{t['max_score']:g}</td>"
        f"<td><pre>{html.escape(t['output'])}</pre></td></tr>" for t in results["tests"])
    page = (f"<!doctype html><meta charset=utf-8><title>{html.escape(out_dir.name)}</title>"
            f"<h1>{html.escape(out_dir.name)}: {results['score']:g}</h1><p>{html.escape(results['output'])}</p>"
            f"<table>{rows}</table>")
    path = out_dir / "report.html"
    write_atomic(path, page)
    return path


def write_index(out_root: Path, rows: list[dict]) -> Path:
    body = "".join(
        f"<tr><td><a href='{html.escape(r['id'])}/report.html'>{html.escape(r['id'])}</a></td>"
        f"<td>{r['results']['score']:g}</td><td>{html.escape(r['results']['extra_data'].get('status', ''))}</td></tr>"
        for r in rows)
    path = Path(out_root) / "index.html"
    write_atomic(path, f"<!doctype html><meta charset=utf-8><title>grades</title><table>{body}</table>")
    return path
