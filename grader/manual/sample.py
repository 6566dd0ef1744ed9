"""A small fake graded folder (the layout `grade --out DIR` writes) for tests and demos of manual grading.

Writes, under the folder it is given, for a few students: DIR/<id>/results.json and submission.json
(built as the pipeline builds them: grader.results.Grade.to_results() and SubmissionInfo, written with
grader.io.write_json), executed.ipynb, files/ (what the grader's re-run wrote: a diagram PNG,
tokens.gif) and submitted/ (what the student submitted: notebook.ipynb with its stored outputs, the
GIF and diagram they attached). `write_result` rewrites a results.json as a regrade would. Reads only
what it wrote.

    python -m grader.manual.sample DIR   # then: python -m grader.manual review DIR
"""

from __future__ import annotations

import base64
import io
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
from nbformat import v4

from grader.intake.submission import SubmissionInfo
from grader.io import SubmissionDir, sha256, write_atomic, write_json
from grader.judge.evidence import diagrams
from grader.results import CheckResult, Grade, Result, Summary
from grader.status import Status

CHECKS = [  # (id, title, max points, manual)
    ("p1.model_loaded", "The model and its tokenizer are loaded", 5.0, False),
    ("p2.model_printed", "The printed model shows the decoder layer's modules", 5.0, False),
    ("p2.diagram", "Diagram of a decoder layer (graded by a TA)", 10.0, True),
    ("p3.captures_match", "Captured tensors equal the residual stream entering each layer", 15.0, False),
    ("p5.explanation", "1-2 sentences on what happens to the tokens (graded by a TA)", 5.0, True),
]
STUDENTS = [  # (id, name, late, status, answer, diagram: "file" | "embedded" | None, what the student submitted)
    ("ada_1", "Ada Lovelace", False, "ok",
     "The tokens start spread over the sphere and drift into two tight clusters in the last layers, "
     "so the residual stream becomes more and more alike across tokens.", "file", "gif"),
    ("grace_2", "Grace Hopper", True, "cell_errors", "They move together.", "embedded", "stored image"),
    ("ivan_3", "Ivan Petrov", False, "timeout", None, None, None),  # no notebook: no hash, nothing submitted
]


def _png_diagram() -> bytes:
    """A small decoder-layer diagram (PIL)."""
    from PIL import Image, ImageDraw

    boxes = ["residual in", "input_layernorm", "self_attn", "+ skip", "post_attention_layernorm", "mlp", "+ skip",
             "residual out"]
    img = Image.new("RGB", (360, 40 + 46 * len(boxes)), "white")
    d = ImageDraw.Draw(img)
    for i, label in enumerate(boxes):
        y = 20 + 46 * i
        fill = "#e8f0fe" if "skip" not in label else "#fef7e0"
        d.rounded_rectangle([70, y, 290, y + 30], radius=6, outline="#3c4043", fill=fill)
        d.text((180, y + 15), label, fill="black", anchor="mm")
        if i + 1 < len(boxes):
            d.line([180, y + 30, 180, y + 46], fill="#3c4043", width=2)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _gif(color: tuple[int, int, int]) -> bytes:
    """A six-frame GIF of dots on a circle, drawn in `color`."""
    from PIL import Image, ImageDraw

    frames = []
    for k in range(6):
        im = Image.new("P", (160, 160), 0)
        im.putpalette([255, 255, 255, *color] + [0] * 762)
        d = ImageDraw.Draw(im)
        d.ellipse([20, 20, 140, 140], outline=1)
        for j in range(8):
            x, y = 40 + (j * 13 + k * 7) % 80, 50 + (j * 17 + k * 5) % 60
            d.ellipse([x, y, x + 6, y + 6], fill=1)
        frames.append(im)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return buf.getvalue()


STUDENT_GIF = (30, 90, 200)  # the GIF a student made on Colab (blue) ...
RERUN_GIF = (200, 60, 30)  # ... and the one the grader's re-run on its miniature wrote (red)


def _notebook(diagram: str | None, png: bytes, stored_image: bool) -> nbformat.NotebookNode:
    """The notebook as submitted: a title, the Part 2 markdown (with the diagram attached when
    `diagram == "embedded"`), a code cell (with an image output stored when `stored_image`)."""
    b64 = base64.b64encode(png).decode("ascii")
    part2 = v4.new_markdown_cell("## Part 2: the decoder layer")
    if diagram == "embedded":
        part2 = v4.new_markdown_cell("## Part 2\n![diagram](attachment:diagram.png)",
                                     attachments={"diagram.png": {"image/png": b64}})
    outputs = [v4.new_output("stream", name="stdout", text="hello\n")]
    if stored_image:
        outputs.append(v4.new_output("display_data", data={"image/png": b64, "text/plain": "<Figure>"}))
    code = v4.new_code_cell("print('hello')", execution_count=1, outputs=outputs)
    return v4.new_notebook(cells=[v4.new_markdown_cell("# Residual stream assignment"), part2, code])


def _checks(status: str) -> list[CheckResult]:
    out = []
    for cid, title, top, manual in CHECKS:
        passed = not manual and status == "ok"
        feedback = "" if manual or passed else f"Not graded: the notebook did not run normally ({status})."
        out.append(CheckResult(id=cid, title=title, max_points=top, points=top if passed else 0.0,
                               status="manual" if manual else ("passed" if passed else "failed"),
                               feedback=feedback, manual=manual))
    return out


def write_result(folder: Path, result: Result, **summary_changes) -> None:
    """folder/results.json for `result` with its Summary's fields changed (answer=..., notebook_sha256=...),
    written as the pipeline writes it: what a regrade of a changed resubmission leaves behind."""
    grade = Grade(submission=result.submission, summary=replace(result.summary, **summary_changes),
                  checks=result.checks, seconds=result.execution_time)
    write_json(SubmissionDir(folder).results, grade.to_results())


def make_sample_out_dir(out_dir: Path | str, extra_students: int = 0) -> Path:
    """Write the fake graded folder; `extra_students` adds plain submissions extra_000, extra_001, ..."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = _png_diagram()
    students = list(STUDENTS) + [(f"extra_{i:03d}", f"Student {i}", False, "ok", "An answer.", None, "")
                                 for i in range(extra_students)]
    for sid, name, late, status, answer, diagram, submitted in students:
        folder = out_dir / sid
        (folder / "files").mkdir(parents=True, exist_ok=True)
        nb = _notebook(diagram, png, stored_image=submitted == "stored image")
        write_atomic(SubmissionDir(folder).executed, nbformat.writes(nb))
        attachments = []
        if diagram == "file":  # attached by the student, kept by the grader's run
            attachments.append("decoder_diagram.png")
            write_atomic(folder / "files" / "decoder_diagram.png", png)
        if status != "timeout":
            write_atomic(folder / "files" / "tokens.gif", _gif(RERUN_GIF))
        notebook = sha = None
        if submitted is not None:  # the notebook as the student submitted it, and what they attached
            notebook = f"{sid}.ipynb"
            write_atomic(folder / "submitted" / "notebook.ipynb", nbformat.writes(nb))
            sha = sha256(folder / "submitted" / "notebook.ipynb")
            for attached in attachments:
                write_atomic(folder / "submitted" / attached, png)
            if submitted == "gif":
                attachments.append("tokens.gif")
                write_atomic(folder / "submitted" / "tokens.gif", _gif(STUDENT_GIF))
        info = SubmissionInfo(id=sid, source=f"submissions/{notebook or sid}", student_name=name,
                              student_id=sid.split("_")[-1], late=late, notebook=notebook,
                              attachments=attachments, notebook_sha256=sha)
        summary = Summary(status=Status(status), reason=f"the notebook ended with status {status}",
                          student_name=name, student_id=info.student_id, late=late, answer=answer,
                          cell_errors=int(status == "cell_errors"),
                          diagrams=diagrams(nb, folder / "files", attachments), notebook_sha256=sha)
        write_json(SubmissionDir(folder).submission, info.to_json())
        write_json(SubmissionDir(folder).results, Grade(info, summary, _checks(status), seconds=1.0).to_results())
    return out_dir


if __name__ == "__main__":
    print(make_sample_out_dir(sys.argv[1] if len(sys.argv) > 1 else "sample-grading"))
