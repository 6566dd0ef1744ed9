"""Rendering: the Jinja environment, the pages' shared filters, and the small formatting helpers.

Every page is one self-contained file: CSS and JS inline, images as data URIs, no fonts or scripts
from the network (a Content-Security-Policy meta tag in templates/base.html forbids any). Everything
a student controls is untrusted: templates autoescape every value, and a page runs no script unless
the page passes one (its hash goes into the CSP).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
IMAGE_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
              ".webp": "image/webp", ".svg": "image/svg+xml"}
MAX_INLINE_IMAGE_BYTES = 3 * 1024 * 1024  # larger images are downscaled


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pts"] = lambda x: "–" if x is None else f"{float(x):g}"
    env.filters["deg"] = fmt_deg
    return env


def render(name: str, ctx: dict, script: str | None = None) -> str:
    """A page from templates/NAME with the shared CSS; `script` (ours, never the student's) may run."""
    from markupsafe import Markup

    ctx = dict(ctx, css=(TEMPLATES / "report.css").read_text(), script=script, script_hash=None)
    if script:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        ctx["script_hash"] = Markup(f"'sha256-{digest}'")  # base64 and quotes: ours, not the student's
    return _env().get_template(name).render(**ctx)


def fmt_deg(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 0.01:
        return "<0.01°"
    return f"{x:.2f}°" if x < 10 else f"{x:.1f}°"


def fmt_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython tracebacks are full of them)."""
    return ANSI_ESCAPE.sub("", text)


@lru_cache(maxsize=1)
def _markdown():
    """CommonMark (+ strikethrough, tables) with raw HTML shown as text, and no links, images or link
    definitions: the answer is the student's text, and a page loads and links nothing it did not build."""
    from markdown_it import MarkdownIt

    return (MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
            .disable(["image", "link", "autolink", "reference"]))


def markdown_html(text: str | None):
    """Student markdown as safe HTML (Markup): bold, italics, code, lists render; HTML tags are escaped."""
    from markupsafe import Markup

    return Markup(_markdown().render(text or ""))  # markdown-it escapes every text and attribute it emits


def answer_html(text: str | None):
    """The student's answer as the pages show it, under their own label: rendered markdown, without the
    label the student typed ("**Answer:**", judge.evidence.answer_body); None when there is no answer."""
    from grader.judge.evidence import answer_body

    return markdown_html(answer_body(text)) if text and text.strip() else None


GRADER_FRAME = re.compile(r"\s*File <grader-")  # a frame of the grader's kernel-side code (probe, Colab shim)
LIBRARY_PREFIX = re.compile(r"(?<![\w.~-])/[^\s:'\"(),]*?/(?=(?:site|dist)-packages/)")
STDLIB_PREFIX = re.compile(r"(?<![\w.~-])/[^\s:'\"(),]*?/lib/(?=python3\.\d+/)")


def shown_traceback(frames: list[str] | None, max_chars: int = 6000) -> str:
    """A cell's traceback as a student or TA reads it: colour codes stripped, no grader frame, library
    paths short ("site-packages/torch/nn/modules/module.py", "python3.11/json/decoder.py"). The kernel
    already hides the grader's wrappers (`__tracebackhide__` in probe.py and colab_env*.py), except the
    innermost frame, which IPython always shows (a torch error raised inside the Colab shim's
    __torch_function__): that one is dropped here. `frames`: IPython's list, one entry per frame.
    Past `max_chars`, runs of library frames keep their first and last frame, so the student's own
    frames ("Cell In[7]") and the exception lines always stay; then the middle is cut."""
    kept = [strip_ansi(f) for f in frames or []]
    kept = [STDLIB_PREFIX.sub("", LIBRARY_PREFIX.sub("", f)) for f in kept if not GRADER_FRAME.match(f)]
    if len("\n".join(kept)) > max_chars:
        kept = _fold_library_frames(kept)
    text = "\n".join(kept)
    if len(text) > max_chars:
        text = text[:max_chars // 3] + "\n\n[… traceback shortened …]\n\n" + text[-2 * max_chars // 3:]
    return text


def _fold_library_frames(frames: list[str]) -> list[str]:
    """Each run of 3 or more library frames ("File site-packages/...") as its first, a count, and its last."""
    out, run = [], []
    for f in frames + [""]:
        if f.lstrip().startswith("File "):
            run.append(f)
            continue
        out += run if len(run) < 3 else [run[0], f"    [… {len(run) - 2} library frames not shown …]\n", run[-1]]
        run = []
        out.append(f)
    return out[:-1]


def sentence(text: str) -> str:
    """Capitalise a reason's first word unless it is a name ('broken.ipynb', 'model.layers')."""
    return text[:1].upper() + text[1:] if re.match(r"[a-z]+(?![\w.])", text or "") else (text or "")


def image_uri(path: Path) -> str | None:
    """A file as a data URI (downscaled when large), or None for what cannot be shown inline."""
    mime = IMAGE_MIME.get(path.suffix.lower())
    if mime is None:
        return None
    if path.stat().st_size > MAX_INLINE_IMAGE_BYTES:
        if mime == "image/svg+xml":
            return None
        from grader.report.plots import first_frame_png

        return first_frame_png(path, max_side=900)
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@dataclass
class Section:
    """One block of a page: its data, or the error that stopped it from being built."""

    data: dict = field(default_factory=dict)
    broken: str | None = None


def section(build: Callable[..., dict], *args) -> Section:
    try:
        return Section(data=build(*args))
    except Exception as exc:  # noqa: BLE001 - one broken section must not cost the page
        return Section(broken=f"{build.__name__}: {exc.__class__.__name__}: {exc}")


def or_empty(build: Callable[..., list], *args) -> list:
    """A list-valued part of a page; on a bug, one entry naming it instead of no page at all."""
    try:
        return build(*args)
    except Exception as exc:  # noqa: BLE001
        return [{"tone": "bad", "label": build.__name__, "value": f"could not be built: {exc!r}",
                 "text": f"{build.__name__} could not be built: {exc!r}"}]
