"""Every number, path and rubric entry is checked before the first notebook runs: a bad value exits 2,
says what was expected and what was found, and writes nothing (no --out folder). Also `--version`, and
StopSignals (the batch's SIGINT/SIGTERM handling) on a real signal."""

from __future__ import annotations

import os
import signal
from importlib.metadata import version

import nbformat
import pytest

from fixtures.notebooks import build
from grader.cli import main

LATE_10 = "[late]\npenalty = 10\n"  # the instructor meant 10 points


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    nbformat.write(build("correct_layer_prehook"), str(folder / "hw.ipynb"))
    return folder


@pytest.mark.parametrize("args, message", [
    (["--timeout", "0"], "--timeout (seconds per notebook) must be a number > 0, found 0"),
    (["--timeout", "nan"], "--timeout (seconds per notebook) must be a number > 0, found nan"),
    (["--cell-timeout", "-5"], "--cell-timeout (seconds per cell) must be a number > 0, found -5"),
    (["--workers", "0"], "--workers (submissions graded at once) must be a whole number >= 1, found 0"),
    (["--workers", "-1"], "found -1"),
    (["--memory", "-1"], "--memory (GB of address space per kernel) must be a number >= 0 (0: no limit), found -1"),
    (["--timeout", "0", "--workers", "0"], "2 settings are not valid (nothing was run or written):"),
])
def test_bad_numbers_exit_2_before_anything_is_written(src, tmp_path, capsys, args, message):
    out = tmp_path / "grading"
    assert main([str(src), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("text, message", [
    (LATE_10, "[late] penalty is a fraction of the points earned, between 0 and 1 (0.1: 10%), found 10; "
              "to subtract 10 points write `points = 10`"),
    ("[late]\npoints = -1\n", "[late] points must be a number >= 0, found -1"),
    ("[late]\npenalty = true\n", "found True"),
    ("[late]\nminutes = 5\n", "[late] may set only 'penalty'"),
    ("[lat]\npenalty = 0.1\n", "unknown table or key 'lat'"),
    ('[checks."p1.model_loaded"]\npoints = inf\n', "points of p1.model_loaded must be a number >= 0, found inf"),
])
def test_every_rubric_entry_is_checked_up_front_the_late_table_included(src, tmp_path, capsys, text, message):
    rubric, out = tmp_path / "rubric.toml", tmp_path / "grading"
    rubric.write_text(text)
    assert main([str(src), "--out", str(out), "--rubric", str(rubric)]) == 2
    err = capsys.readouterr().err
    assert message in err and "--rubric:" in err and "nothing was run or written" in err
    assert not out.exists()


def test_a_rubric_that_is_missing_or_a_folder_is_a_usage_error(src, tmp_path, capsys):
    out = tmp_path / "grading"
    assert main([str(src), "--out", str(out), "--rubric", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml does not exist" in capsys.readouterr().err
    assert main([str(src), "--out", str(out), "--rubric", str(tmp_path)]) == 2
    assert "is a folder; expected a rubric.toml file" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["{src}", "--out", "{file}"], "argument --out: expected a folder (an existing one or one to create), found a file"),
    (["{src}", "--out", "{out}", "--shard", "0/3"], "argument --shard: --shard K/N needs 1 <= K <= N, got '0/3'"),
    (["{src}", "--out", "{out}", "--shard", "three"], "--shard expects K/N such as 2/8"),
    (["review", "{src}", "--port", "0"], "argument --port: expected a TCP port number between 1 and 65535, found '0'"),
    (["review", "{src}", "--port", "70000"], "found '70000'"),
    (["review", "{src}", "--port", "http"], "found 'http'"),
    (["feedback", "{src}", "--out", "{file}"], "argument --out: expected a folder"),
])
def test_bad_option_values_are_argparse_errors(src, tmp_path, capsys, argv, message):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    names = {"src": src, "file": afile, "out": tmp_path / "grading"}
    with pytest.raises(SystemExit) as exc:
        main([a.format(**names) for a in argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "grading").exists()


def test_check_and_gradescope_run_validate_their_options_too(src, tmp_path, capsys, monkeypatch):
    from grader.run.selfcheck import check_main

    nb = src / "hw.ipynb"
    assert main(["check", str(nb), "--cell-timeout", "0", "--out", str(tmp_path / "c")]) == 2
    assert "--cell-timeout (seconds per cell) must be a number > 0, found 0" in capsys.readouterr().err
    assert check_main([str(nb), "--timeout", "-1", "--out", str(tmp_path / "c")]) == 2
    assert "--timeout (seconds per notebook) must be a number > 0, found -1" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert check_main([str(nb), "--out", str(afile)]) == 2
    assert "expected a folder" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    monkeypatch.setenv("GRADESCOPE_ROOT", str(root))
    assert main(["gradescope-run", "--timeout", "0"]) == 2
    assert not (root / "results").exists()


def test_version_of_grade_and_grade_check(capsys):
    from grader.run.selfcheck import check_main

    installed = version("qwen3-interp-grader")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"grade {installed}"
    assert check_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"grade-check {installed}"


def test_more_workers_than_cpus_is_allowed_with_a_note():
    from grader.settings import Settings

    many = Settings(workers=(os.cpu_count() or 1) + 1)
    many.validate()
    assert "more than this machine's" in many.cpu_note()
    assert Settings(workers=1).cpu_note() is None


def test_stop_signals_turn_sigterm_and_sigint_into_a_flag_and_restore_the_handlers():
    from grader.run.batch import StopSignals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.event.wait(timeout=60)
        os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping changes nothing and raises nothing
        assert stop.received == signal.SIGTERM and stop.name == "SIGTERM"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
