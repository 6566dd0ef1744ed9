"""Evidence read from the executed notebook and the files: printed model, diagram, GIF, answer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.families.base import Family
from grader.spec.pack import Assignment, load_pack

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp", ".gif"}


@dataclass
class GifInfo:
    name: str | None = None
    path: Path | None = None
    origin: str | None = None  # "notebook" (the notebook wrote it) or "attachment"
    frames: int | None = None
    size: tuple[int, int] | None = None
    error: str | None = None


@dataclass
class SubmittedView:
    """What the student saw on Colab (the real model), before the grader re-ran anything: the GIF they
    attached and the images stored in the notebook they submitted (out/<id>/submitted/)."""

    gif: Path | None = None
    images: list[tuple[int, str]] = field(default_factory=list)  # (cell index, data URI of an image output)
    stored_outputs: int = 0  # code cells that came with outputs


@dataclass
class Evidence:
    printed_model: str | None = None  # the printed text, when the model was printed
    diagrams: list[str] = field(default_factory=list)  # image files / embedded images, for the TA
    gif: GifInfo = field(default_factory=GifInfo)
    answer: str | None = None  # the student's 1-2 sentence explanation
    files: list[str] = field(default_factory=list)
    submitted: SubmittedView = field(default_factory=SubmittedView)


def _cell_text_outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def printed_model(nb: nbformat.NotebookNode | None, family: Family | None = None) -> str | None:
    """The printed model (its text from the top class down), when a cell's output shows everything the
    family's decoder layer prints (`Family.printed`)."""
    family = family or load_pack().family
    for cell in (nb.cells if nb else []):
        if cell.cell_type != "code":
            continue
        text = _cell_text_outputs(cell)
        if all(marker in text for marker in family.printed):
            # print(model) of AutoModelForCausalLM's *ForCausalLM, or of AutoModel's base model (no LM head)
            starts = [i for i in (text.find(f"{name}(") for name in (*family.causal_lm, *family.base_models)) if i >= 0]
            return text[min(starts, default=0):][:4000]
    return None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def answer_text(nb: nbformat.NotebookNode | None, pack: Assignment | None = None) -> str | None:
    """The student's explanation: markdown they wrote in Part 5 (after their own Part 5 header, or after
    the last code cell when there is none), that is not the assignment's own text or a bare header.
    When nothing is found there (a code cell such as files.download(...) after the answer), markdown
    after the assignment's own Part 5 header counts too."""
    if nb is None:
        return None
    template = [_normalise(t) for t in (pack or load_pack()).markdown_cells]
    cells = nb.cells
    headers = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.match(
        r"#+[^\n]*part\s*5", c.source.strip(), flags=re.I) and not re.search(r"part\s*4", c.source, flags=re.I)]
    own = [i for i in headers if _normalise(cells[i].source) not in template[0]]
    last_code = max((i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.strip()), default=-1)
    start = own[-1] if own else last_code
    found = _answers_after(cells, start, template)
    if not found and headers and headers[0] < start:
        found = _answers_after(cells, headers[0], template)
    return "\n\n".join(found)[:3000] or None


ANSWER_LABEL = re.compile(  # a label the student typed before the answer: "Answer:", "**Answer:**", "A:", "My answer:"
    r"[ \t]*(?:#{1,6}[ \t]+)?(?P<open>\*{1,3}|_{1,3})?[ \t]*"
    r"(?:(?:my|our|the|final)[ \t]+)?(?P<word>answer|explanation|ans|a)\b[ \t]*(?P<close1>\*{1,3}|_{1,3})?[ \t]*"
    r"(?P<colon>:|[-\u2013\u2014](?=[ \t]))?[ \t]*(?P<close2>\*{1,3}|_{1,3})?", re.I)


def answer_body(text: str | None) -> str | None:
    """The answer without a leading label the student typed ("Answer:", "**Answer:**", "A:", "My answer:",
    an "## Answer" line), for pages that show it under their own "Answer"/"Explanation" label. The stored
    answer (answer_text, results.json) keeps the label: it is what the student wrote; pages drop it here.
    Without a colon only a label alone on its line counts ("**Answer**" above the text); "A" and "Ans"
    need a colon. An answer that is nothing but a label is returned as it is."""
    if not text:
        return text
    m = ANSWER_LABEL.match(text)
    if m is None:
        return text
    rest = text[m.end():]
    closed = m.group("close1") or m.group("close2")
    if m.group("colon") is None:
        alone = rest.startswith(("\n", "\r")) or not rest.strip()
        if not alone or m.group("word").lower() in ("a", "ans") or (m.group("open") and not closed):
            return text
    elif m.group("open") and not closed:  # "**Answer: the tokens cluster.**": keep the emphasis it opened
        rest = m.group("open") + rest
    body = rest.strip()
    return body or text


def _answers_after(cells, start: int, template: list[str]) -> list[str]:
    """The student's own markdown (5 words or more, not only a header) after cell `start`."""
    found = []
    for cell in cells[start + 1:] if start >= 0 else cells:
        if cell.cell_type != "markdown":
            continue
        text = _strip_template(cell.source.strip(), template)
        text = re.sub(r"!\[[^\]]*\]\(data:[^)]*\)", "", text).strip()  # an image pasted into the cell
        words = re.findall(r"[A-Za-z]{2,}", text)
        if len(words) < 5 or re.fullmatch(r"#+ [^\n]*", text):
            continue
        found.append(text)
    return found


def _strip_template(text: str, template: list[str]) -> str:
    """A student's cell without the paragraphs that repeat the assignment's text (e.g. the question
    quoted above an answer)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    kept = [p for p in paragraphs if not any(_normalise(p) in t for t in template)]
    return "\n\n".join(kept).strip()


def gif_info(files_dir: Path, file_records: list[dict]) -> GifInfo:
    from PIL import Image

    origin = {f["name"]: f.get("origin") for f in file_records}
    path = files_dir / "tokens.gif"
    if not path.is_file():
        gifs = sorted(files_dir.glob("*.gif")) if files_dir.is_dir() else []
        if not gifs:
            return GifInfo(error="no tokens.gif was written by the notebook or attached to the submission")
        path = gifs[0]
    info = GifInfo(name=path.name, path=path, origin=origin.get(path.name))
    try:
        with Image.open(path) as im:
            info.frames = int(getattr(im, "n_frames", 1))
            info.size = im.size
            im.seek(info.frames - 1)
            im.load()
    except Exception as exc:  # noqa: BLE001 - any unreadable image
        info.error = f"{path.name} cannot be read as a GIF ({exc.__class__.__name__}: {exc})"
    return info


MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]+src=[\"']([^\"']+)")
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host/...


def _linked_images(nb, with_cells: bool = False) -> list:
    """Targets of images linked from markdown cells (not cell attachments); (cell index, target) pairs
    with `with_cells`."""
    found = []
    for index, cell in enumerate(nb.cells if nb else []):
        if cell.cell_type == "markdown":
            for m in MARKDOWN_IMAGE.finditer(cell.source):
                target = m.group(1) or m.group(2)
                if not target.startswith("attachment:"):
                    found.append((index, target) if with_cells else target)
    return found


def remote_images(nb: nbformat.NotebookNode | None) -> list[str]:
    """Images linked from the web (the Colab badge, shields, any http(s) image): never a diagram, never loaded."""
    return list(dict.fromkeys(t for t in _linked_images(nb) if REMOTE.match(t)))


def diagrams(nb: nbformat.NotebookNode | None, files_dir: Path, attachments: list[str]) -> list[str]:
    """Images a TA should look at for the Part 2 diagram: attached images, images embedded in markdown,
    and local images linked from markdown. Remote links (the Colab badge the assignment starts with,
    shields, any http(s) image) are not the student's diagram."""
    found = []
    skip = re.compile(r"^(tokens\.gif|frame_\d+\.png)$")
    for name in attachments:
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and not skip.match(name):
            found.append(name)
    for cell in (nb.cells if nb else []):
        if cell.cell_type == "markdown":
            for name in (cell.get("attachments") or {}):
                found.append(f"{name} (embedded in a markdown cell)")
    for index, target in _linked_images(nb, with_cells=True):
        if target.startswith("data:image/"):
            found.append(f"an image pasted into markdown cell {index}")
        elif not REMOTE.match(target) and not target.startswith("data:"):
            found.append(f"{target} (linked from a markdown cell)")
    if files_dir.is_dir():
        for path in sorted(files_dir.iterdir()):
            if "diagram" in path.name.lower() and path.name not in found:
                found.append(path.name)
    return list(dict.fromkeys(found))


MAX_SUBMITTED_IMAGES = 6


def submitted_view(folder: Path) -> SubmittedView:
    """The submitted GIF and the image outputs stored in the submitted notebook (what the student saw)."""
    view = SubmittedView()
    if not folder.is_dir():
        return view
    gifs = sorted(folder.glob("*.gif"), key=lambda p: p.name != "tokens.gif")
    view.gif = gifs[0] if gifs else None
    try:
        nb = nbformat.read(folder / "notebook.ipynb", as_version=4)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing stored to show
        return view
    for index, cell in enumerate(nb.cells):
        outputs = cell.get("outputs") or [] if cell.cell_type == "code" else []
        view.stored_outputs += bool(outputs)
        for out in outputs:
            data = (out.get("data") or {}).get("image/png")
            if isinstance(data, list):
                data = "".join(data)
            if isinstance(data, str) and len(view.images) < MAX_SUBMITTED_IMAGES and len(data) < 4_000_000:
                view.images.append((index, "data:image/png;base64," + re.sub(r"[^A-Za-z0-9+/=]", "", data)))
    return view
