"""`grade review DIR`: a small local web app where a TA grades the manual checks of a graded folder.

Reads each submission's graded result (grader.results.Result via outdir.result: student, status,
the automated verdicts, the written answer, the notebook's sha256, the status that decides what an
ungraded manual check is worth: grader.report.totals.manual_mark), DIR/<id>/executed.ipynb and
files/ (the diagram evidence, evidence.py), DIR/<id>/submitted/ and the real-model panel (what the
student saw, student_view.py); reads and writes DIR/manual.json through ManualStore (POST of the
grading form). Pages: `/` lists the submissions, those with manual checks still to grade first; `/s/<id>`
shows one submission (diagram images, the written answer, what the student saw, the automated
verdicts) with a form of points and comment per manual check; j/k or the arrow keys move to the
next/previous submission, n to the next one with checks to grade.

Security: binds 127.0.0.1 by default and then answers only requests for a loopback Host (no DNS
rebinding); files are served only through outdir.safe_path (inside DIR/<id>, no `..`, absolute
paths, hidden names or symlinks leaving it: 404 otherwise) under a sandboxing CSP; ids must be
existing submission folders; templates autoescape; POSTs with a foreign Origin (or a cross-site
Sec-Fetch-Site) are refused with 403.
"""

from __future__ import annotations

import getpass
import re
import secrets
from pathlib import Path
from typing import Callable

from flask import Flask, abort, g, redirect, render_template, request, send_file, url_for

from grader.manual import evidence, outdir
from grader.manual.store import Entry, ManualGradeError, ManualStore, ManualStoreError, entry_is_stale
from grader.manual.student_view import student_view
from grader.report.render import IMAGE_MIME, answer_html
from grader.report.totals import ManualMark, manual_mark

__all__ = ["create_app", "serve", "student_view", "default_grader_name"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


def default_grader_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this system
        return "TA"


def _hostname(host: str) -> str:
    """The name part of a Host header ("[::1]:8000" -> "::1", "localhost:8000" -> "localhost")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):g}"


def _when(iso: str) -> str:
    """"2025-01-31T12:00:07+00:00" -> "2025-01-31 12:00 UTC" (anything else as it is)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(?:\+00:00|Z)", iso or "")
    return f"{m.group(1)} {m.group(2)} UTC" if m else (iso or "")


def _marks(res, entries: dict[str, Entry]) -> list[ManualMark]:
    """The manual checks of one result as every total counts them (grader/report/totals.py): the TA's
    points, the rule's 0 where nothing gradable was submitted, or pending."""
    return [manual_mark(c, entries.get(c.id), res) for c in outdir.manual_checks(res).values()]


def _summary(out_dir: Path, entries: dict[str, Entry], sid: str) -> dict:
    """One row of the submission list: student, status, automated score, manual progress.
    `entries`: this submission's manual grades. `pending` counts what a TA can grade now; `held`, the
    checks that wait for a regrade (grader_error); `automatic`, those worth the rule's 0."""
    res = outdir.result(out_dir, sid)
    marks = _marks(res, entries)
    return {"id": sid, "student": outdir.student_name(res), "late": bool(res.summary.late),
            "status": str(res.summary.status or ""), "auto": res.score, "auto_max": res.auto_max_score,
            "manual": sum(m.points or 0.0 for m in marks), "manual_max": sum(m.max_points for m in marks),
            "n_checks": len(marks), "n_graded": sum(m.points is not None and not m.automatic for m in marks),
            "n_stale": sum(m.stale for m in marks), "automatic": sum(m.automatic for m in marks),
            "held": sum(m.held for m in marks), "pending": sum(m.points is None and not m.held for m in marks),
            "note": next((m.note for m in marks if m.note), "")}


def _pending(out_dir: Path, sid: str, entries: dict[str, Entry]) -> list[str]:
    """The manual checks of `sid` a TA can grade now (not graded, or stale; not waiting for a regrade)."""
    return [m.check for m in _marks(outdir.result(out_dir, sid), entries) if m.points is None and not m.held]


def create_app(out_dir: Path | str, grader_name: str | None = None,
               allowed_hosts: tuple[str, ...] | None = LOOPBACK) -> Flask:
    """The review app over DIR. `allowed_hosts`: Host names it answers (None: any)."""
    out_dir = Path(out_dir).resolve()
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024, MAX_FORM_MEMORY_SIZE=512 * 1024)
    app.jinja_env.autoescape = True  # every template, whatever its name
    app.jinja_env.filters["pts"] = _fmt
    app.jinja_env.filters["when"] = _when
    store = ManualStore(out_dir)
    grader = (grader_name or "").strip() or default_grader_name()
    allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    @app.before_request
    def _guard():
        g.nonce = secrets.token_urlsafe(16)
        if allowed is not None and _hostname(request.host) not in allowed:
            abort(400, description="this review server answers only on " + ", ".join(sorted(allowed)))
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("Origin")
            if origin is not None and origin.rstrip("/").lower() != request.host_url.rstrip("/").lower():
                abort(403, description=f"refused a POST from another origin ({origin})")
            if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
                abort(403, description="refused a cross-site POST")

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", PAGE_CSP.format(nonce=g.get("nonce", "none")))
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Chrome send Origin: null
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def ids() -> list[str]:
        return outdir.submission_ids(out_dir)

    def known(sid: str) -> str:
        if not outdir.is_submission(out_dir, sid):
            abort(404)
        return sid

    def render(name: str, status: int = 200, **ctx):
        return render_template(name, grader=grader, out_dir=str(out_dir), nonce=g.nonce, **ctx), status

    @app.get("/")
    def index():
        try:
            snapshot = store.snapshot()
            rows = [_summary(out_dir, snapshot.get(sid, {}), sid) for sid in ids()]
        except ManualStoreError as exc:
            return render("error.html", 500, message=str(exc))
        rows.sort(key=lambda r: (r["pending"] == 0, r["id"]))
        counts = {"submissions": len(rows), "pending": sum(r["pending"] > 0 for r in rows),
                  "done": sum(r["pending"] == 0 and not r["held"] for r in rows),
                  "stale": sum(r["n_stale"] for r in rows), "checks_left": sum(r["pending"] for r in rows),
                  "automatic": sum(r["automatic"] > 0 for r in rows), "held": sum(r["held"] > 0 for r in rows)}
        first_pending = next((r["id"] for r in rows if r["pending"]), None)
        return render("index.html", rows=rows, counts=counts, first_pending=first_pending)

    def page(sid: str, status: int = 200, errors: list[str] | None = None, typed: dict | None = None):
        order = ids()
        pos = order.index(sid)
        res = outdir.result(out_dir, sid)
        checks = outdir.manual_checks(res)
        snapshot = store.snapshot()
        entries = snapshot.get(sid, {})
        current = res.summary.notebook_sha256
        forms = []
        for c in checks.values():
            e = entries.get(c.id)
            t = (typed or {}).get(c.id)
            mark = manual_mark(c, e, res)
            forms.append({"id": c.id, "title": c.title, "max_points": c.max_points, "entry": e,
                          "points": t[0] if t else (_fmt(e.points) if e else ""),
                          "comment": t[1] if t else (e.comment if e else ""),
                          "stale": entry_is_stale(e, current), "feedback": c.output,
                          "automatic": mark.automatic, "held": mark.held, "note": mark.note})
        after = order[pos + 1:] + order[:pos]
        next_pending = next((s for s in after if _pending(out_dir, s, snapshot.get(s, {}))), None)
        nb = evidence.load_notebook(out_dir, sid)
        files = [dict(f, url=url_for("file", sid=sid, rel=f["rel"])) for f in evidence.diagram_files(out_dir, sid)]
        embedded = evidence.embedded_images(nb)
        shown = {f["name"] for f in files} | {im["name"] for im in embedded}
        saved = request.args.get("saved")
        return render("submission.html", status, sid=sid, pos=pos + 1, total=len(order),
                      prev_id=order[pos - 1] if pos > 0 else None,
                      next_id=order[pos + 1] if pos + 1 < len(order) else None, next_pending=next_pending,
                      student=outdir.student_name(res), summary=res.summary, sub=res.submission, files=files,
                      embedded=embedded, listed=evidence.listed_images(out_dir, sid, nb, res, shown),
                      answer=answer_html(evidence.answer(res)), view=student_view(out_dir, sid), verdicts=res.checks,
                      forms=forms, ta_points={c: e.points for c, e in entries.items()},
                      auto=res.score, auto_max=res.auto_max_score,
                      has_report=outdir.safe_path(out_dir, sid, "report.html") is not None,
                      saved=saved if saved and (saved == sid or outdir.is_submission(out_dir, saved)) else None,
                      errors=errors or [])

    @app.get("/s/<sid>")
    def submission(sid: str):
        try:
            return page(known(sid))
        except ManualStoreError as exc:
            return render("error.html", 500, message=str(exc))

    @app.post("/s/<sid>")
    def save(sid: str):
        known(sid)
        checks = outdir.manual_checks(outdir.result(out_dir, sid))
        items, errors, typed = [], [], {}
        for cid, check in checks.items():
            points = (request.form.get(f"points:{cid}") or "").strip()
            comment = request.form.get(f"comment:{cid}") or ""
            typed[cid] = (points, comment)
            if points:
                items.append((sid, cid, points, comment))
            elif comment.strip():
                errors.append(f"{cid}: enter points (0 to {check.max_points:g}) to save its comment.")
        if not errors:
            try:
                store.set_many(items, grader)
            except ManualGradeError as exc:
                errors.append(str(exc))
            except ManualStoreError as exc:
                return render("error.html", 500, message=str(exc))
        if errors:
            return page(sid, 400, errors=errors, typed=typed)
        target = sid
        if request.form.get("then") == "next":
            order = ids()
            pos = order.index(sid)
            target = order[pos + 1] if pos + 1 < len(order) else sid
        return redirect(url_for("submission", sid=target, saved=sid), code=303)

    @app.get("/s/<sid>/file/<path:rel>")
    def file(sid: str, rel: str):
        path = outdir.safe_path(out_dir, known(sid), rel)
        if path is None:
            abort(404)
        resp = send_file(path, max_age=0, mimetype=IMAGE_MIME.get(path.suffix.lower()))
        resp.headers["Content-Security-Policy"] = FILE_CSP
        return resp

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    def _error(exc):
        nonce = g.get("nonce") or secrets.token_urlsafe(16)
        g.nonce = nonce
        return render("error.html", exc.code, message=f"{exc.code} {exc.name}: {exc.description}")

    return app


def serve(out_dir: Path | str, host: str = "127.0.0.1", port: int = 8000, grader_name: str | None = None,
          *, log: Callable[[str], None] = print, ready: Callable[[object], None] | None = None) -> None:
    """Run the review app with Werkzeug's threaded server until interrupted. `port=0` picks a free
    port; `ready(server)` is called once it listens (server.server_port, server.shutdown())."""
    from werkzeug.serving import make_server

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir} is not a folder (pass the --out folder of `grade`)")
    wildcard = host in ("", "0.0.0.0", "::")
    allowed = None if wildcard else tuple(dict.fromkeys((*LOOPBACK, _hostname(host))))
    app = create_app(out_dir, grader_name, allowed_hosts=allowed)
    server = make_server(host, port, app, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    n = len(outdir.submission_ids(out_dir))
    log(f"reviewing {n} submission(s) in {out_dir.resolve()}; grades go to {ManualStore(out_dir).path}")
    log(f"open http://{shown}:{server.server_port}/  (Ctrl-C to stop)")
    if wildcard:
        log("warning: listening on every interface: anyone who can reach this machine can read and grade")
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
