"""Finding submissions: Canvas names, folders, zips, duplicates, and things that are not notebooks."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.intake.discovery import Discovery, parse_canvas_name, safe_extract, ZipProblem


def _nb(path: Path, source: str = "print(1)") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("name, student, uid, aid, late, filename, resub", [
    ("doejane_12345_67890_Assignment.ipynb", "doejane", "12345", 67890, False, "Assignment.ipynb", 0),
    ("doejane_LATE_12345_67891_Assignment-2.ipynb", "doejane", "12345", 67891, True, "Assignment.ipynb", 2),
    ("smithjohn_222_333_decoder_diagram.png", "smithjohn", "222", 333, False, "decoder_diagram.png", 0),
    ("anon_Xy12Z_555_hw.ipynb", "anon_Xy12Z", "Xy12Z", 555, False, "hw.ipynb", 0),
    ("anon_Xy12Z_LATE_9_555_hw.ipynb", "anon_Xy12Z", "9", 555, True, "hw.ipynb", 0),
])
def test_parse_canvas_names(name, student, uid, aid, late, filename, resub):
    c = parse_canvas_name(name)
    assert (c.student, c.user_id, c.attachment_id, c.late, c.filename, c.resubmission) == \
        (student, uid, aid, late, filename, resub)


@pytest.mark.parametrize("name", ["Assignment.ipynb", "my_notebook_v2.ipynb", "Doe_12_34_x.ipynb"])
def test_plain_names_are_not_canvas_names(name):
    assert parse_canvas_name(name) is None


def test_canvas_batch_groups_files_by_student_and_grades_the_newest(tmp_path):
    d = tmp_path / "batch"
    _nb(d / "doejane_12345_67890_Assignment.ipynb")
    _nb(d / "doejane_12345_67899_Assignment-1.ipynb")
    (d / "doejane_12345_67891_diagram.png").write_bytes(b"\x89PNG")
    _nb(d / "roekim_LATE_222_333_hw.ipynb")
    subs = Discovery().find([d])
    assert [s.id for s in subs] == ["doejane_12345", "roekim_222"]
    jane, kim = subs
    assert jane.notebook.name == "doejane_12345_67899_Assignment-1.ipynb"
    assert [p.name for p in jane.attachments] == ["doejane_12345_67890_Assignment.ipynb", "doejane_12345_67891_diagram.png"]
    assert any("graded the newest" in n for n in jane.notes)
    assert kim.late and kim.student_id == "222" and not jane.late


def test_student_folders_zips_and_loose_notebooks(tmp_path):
    d = tmp_path / "class"
    _nb(d / "alice" / "hw.ipynb")
    (d / "alice" / "diagram.jpg").write_bytes(b"jpg")
    (d / "alice" / ".ipynb_checkpoints").mkdir()
    _nb(d / "alice" / ".ipynb_checkpoints" / "hw-checkpoint.ipynb")
    zpath = d / "bob.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("bob/work.ipynb", nbformat.writes(nbformat.v4.new_notebook()))
        zf.writestr("bob/tokens.gif", b"GIF89a")
    _nb(d / "carol.ipynb")
    discovery = Discovery()
    try:
        subs = {s.id: s for s in discovery.find([d])}
        assert set(subs) == {"alice", "bob", "carol"}
        assert subs["alice"].notebook.name == "hw.ipynb"
        assert [p.name for p in subs["alice"].attachments] == ["diagram.jpg"]
        assert subs["bob"].notebook.name == "work.ipynb" and [p.name for p in subs["bob"].attachments] == ["tokens.gif"]
        assert subs["carol"].attachments == []
    finally:
        discovery.cleanup()
    assert not any(p.exists() for p in discovery.temp_dirs)


def test_a_single_student_folder_with_its_diagram(tmp_path):
    d = tmp_path / "me"
    _nb(d / "hw.ipynb")
    (d / "diagram.png").write_bytes(b"png")
    subs = Discovery().find([d])
    assert len(subs) == 1 and subs[0].notebook.name == "hw.ipynb"
    assert [p.name for p in subs[0].attachments] == ["diagram.png"]


def test_zip_with_path_traversal_is_refused_without_extracting(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ok.ipynb", "{}")
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(ZipProblem, match="path traversal"):
        safe_extract(zpath, tmp_path / "out")
    subs = Discovery().find([zpath])
    assert len(subs) == 1 and "path traversal" in subs[0].problem and subs[0].notebook is None
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_things_that_are_not_notebooks_still_become_submissions(tmp_path):
    (tmp_path / "dir.ipynb").mkdir()
    (tmp_path / "essay.docx").write_bytes(b"docx")
    subs = {s.id: s for s in Discovery().find([tmp_path / "dir.ipynb", tmp_path / "essay.docx",
                                                 tmp_path / "missing.ipynb"])}
    assert subs["dir"].notebook.is_dir() and subs["dir"].problem is None  # the executor says "is a directory"
    assert "not a Jupyter notebook" in subs["essay"].problem
    assert "does not exist" in subs["missing"].problem


def test_ids_are_unique_and_filesystem_safe(tmp_path):
    _nb(tmp_path / "a" / "Home work (final).ipynb")
    _nb(tmp_path / "b" / "Home work (final).ipynb")
    subs = Discovery().find([tmp_path / "a" / "Home work (final).ipynb", tmp_path / "b" / "Home work (final).ipynb"])
    ids = [s.id for s in subs]
    assert len(set(ids)) == 2
    assert all(c.isalnum() or c in "._-" for i in ids for c in i)


def test_a_canvas_name_gives_the_student_on_every_problem_path(tmp_path):
    """Whatever the file holds (a corrupt zip, a folder without a notebook, a folder named .ipynb, a
    .docx, a path that is gone), the Canvas name gives the student, the Canvas id and the late flag."""
    d = tmp_path / "canvas"
    d.mkdir()
    (d / "doejane_20002_30003_submission.zip").write_bytes(b"PK\x03\x04 cut off")
    (d / "leeann_LATE_20008_30009_files").mkdir()
    (d / "leeann_LATE_20008_30009_files" / "notes.txt").write_text("no notebook here")
    (d / "kimbo_20018_30019_hw.ipynb").mkdir()
    (d / "roekim_20004_30005_essay.docx").write_bytes(b"docx")
    subs = {s.id: s for s in Discovery().find([d, tmp_path / "smithal_LATE_20006_30007_hw.ipynb"])}
    expected = {"doejane_20002": ("doejane", "20002", False, "File is not a zip file"),
                "leeann_20008": ("leeann", "20008", True, "no .ipynb notebook"),
                "kimbo_20018": ("kimbo", "20018", False, None),  # the executor says "is a directory"
                "roekim_20004": ("roekim", "20004", False, "no .ipynb notebook"),
                "smithal_20006": ("smithal", "20006", True, "does not exist")}
    assert set(subs) == set(expected)
    for sid, (student, uid, late, problem) in expected.items():
        sub = subs[sid]
        assert (sub.student_name, sub.student_id, sub.late) == (student, uid, late), sid
        assert (problem is None and sub.problem is None) or problem in sub.problem, (sid, sub.problem)
    assert subs["doejane_20002"].attachment_id == 30003
