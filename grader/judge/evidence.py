"""Evidence read from the executed notebook and the files: printed model, diagram, GIF, answer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.spec.assignment import TEMPLATE_MARKDOWN

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf", ".webp", ".gif"}
PRINTED_MODEL_MARKERS = ("Qwen3DecoderLayer(", "(self_attn)", "(mlp)", "(input_layernorm)")


@dataclass
class GifInfo:
    name: str | None = None
    path: Path | None = None
    origin: str | None = None  # "notebook" (the notebook wrote it) or "attachment"
    frames: int | None = None
    size: tuple[int, int] | None = None
    error: str | None = None


@dataclass
class Evidence:
    printed_model: str | None = None  # the printed text, when the model was printed
    diagrams: list[str] = field(default_factory=list)  # image files / embedded images, for the TA
    gif: GifInfo = field(default_factory=GifInfo)
    answer: str | None = None  # the student's 1-2 sentence explanation
    files: list[str] = field(default_factory=list)


def _cell_text_outputs(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def printed_model(nb: nbformat.NotebookNode | None) -> str | None:
    for cell in (nb.cells if nb else []):
        if cell.cell_type != "code":
            continue
        text = _cell_text_outputs(cell)
        if all(marker in text for marker in PRINTED_MODEL_MARKERS):
            start = text.find("Qwen3ForCausalLM(")
            return text[start if start >= 0 else 0:][:4000]
    return None


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def answer_text(nb: nbformat.NotebookNode | None) -> str | None:
    """The student's explanation: markdown they wrote in Part 5 (after their Part 5 header, or after
    the last code cell when there is none), that is not the assignment's own text or a bare header."""
    if nb is None:
        return None
    template = [_normalise(t) for t in TEMPLATE_MARKDOWN]
    cells = nb.cells
    part5 = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.match(
        r"#+[^\n]*part\s*5", c.source.strip(), flags=re.I) and _normalise(c.source) not in template[0]]
    last_code = max((i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.strip()), default=-1)
    start = part5[-1] if part5 else last_code
    found = []
    for cell in cells[start + 1:] if start >= 0 else cells:
        if cell.cell_type != "markdown":
            continue
        text = _strip_template(cell.source.strip(), template)
        words = re.findall(r"[A-Za-z]{2,}", text)
        if len(words) < 5 or re.fullmatch(r"#+ [^\n]*", text):
            continue
        found.append(text)
    return "\n\n".join(found)[:3000] or None


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


def diagrams(nb: nbformat.NotebookNode | None, files_dir: Path, attachments: list[str]) -> list[str]:
    """Images a TA should look at for the Part 2 diagram: attached images and images embedded in markdown."""
    found = []
    skip = re.compile(r"^(tokens\.gif|frame_\d+\.png)$")
    for name in attachments:
        if Path(name).suffix.lower() in IMAGE_SUFFIXES and not skip.match(name):
            found.append(name)
    for cell in (nb.cells if nb else []):
        if cell.cell_type == "markdown":
            for name in (cell.get("attachments") or {}):
                found.append(f"{name} (embedded in a markdown cell)")
            for m in re.finditer(r"!\[[^\]]*\]\(([^)]+)\)|<img[^>]+src=[\"']([^\"']+)", cell.source):
                target = m.group(1) or m.group(2)
                if not target.startswith("attachment:"):
                    found.append(f"{target} (linked from a markdown cell)")
    if files_dir.is_dir():
        for path in sorted(files_dir.iterdir()):
            if "diagram" in path.name.lower() and path.name not in found:
                found.append(path.name)
    return list(dict.fromkeys(found))
