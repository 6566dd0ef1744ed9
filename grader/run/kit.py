"""The student self-check kit: what an instructor posts for the class.

    grade student-kit KIT_DIR [--assignment PACK]

writes KIT_DIR/<wheel>.whl and KIT_DIR/README.md. The wheel (qwen3-interp-selfcheck) installs the
`grade-check` command and holds the grader (intake, execute, judge, rubric and its checks, report,
spec, run, the assignment packs) and the miniature generator and its offline HF cache builder, plus frozen
goldens of the assignment's prompt computed now, in float32, bfloat16
and float16 (grader/judge/frozen/), so judging needs no `reference` package. A kit is built for one pack
(default: the default pack): grader/packs/DEFAULT names it, so `grade-check` checks that assignment.

It leaves out what would hand students the solution or is for staff only: the `reference` package
(the assignment done right, the diagram generator among it), `fixtures` (solution and mistake
notebooks, sample submissions), the TA tools (grader/manual, and grader/report/dynamics.json: what a
trained model does to the prompt, the answer to Part 5's question) and the tests. `build_kit` checks the
built wheel for them and refuses to write a kit that has any.

The wheel is built with standard packaging: a source tree staged in a temporary folder with its own
pyproject.toml (setuptools), then `python -m pip wheel --no-deps --no-build-isolation`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages when installed)
KIT_NAME = "qwen3-interp-selfcheck"
SHIPPED_PACKAGES = ("grader", "miniature")
# TA tools, and the TA's panel of what a trained model does to the prompt (the answer to Part 5's question)
LEFT_OUT = ("grader/manual", "grader/report/dynamics.json")
SKIP_PARTS = {"__pycache__", ".pytest_cache", "frozen"}  # frozen: written fresh for every kit
SKIP_SUFFIXES = {".pyc", ".pyo"}
STAFF_ONLY_DEPENDENCIES = {"flask"}  # `grade review` (grader/manual), not in the kit
# Top-level names and folders a kit wheel must never hold.
FORBIDDEN = ("reference/", "fixtures/", "tests/", "grader/manual/", "bench/", "grader/report/dynamics.json")

README = """# Self-check kit: {title}

Check your notebook before you submit it. `grade-check` runs it on your computer's CPU, on a
miniature {model_name} (same module names, {n_layers} layers, the real tokenizer; no download), exactly as the
grader will, and prints every check with its feedback. It does not contain the solution.

## Install (once; Linux, macOS or Windows, Python {python})

```bash
python -m venv selfcheck-env
source selfcheck-env/bin/activate        # Windows: selfcheck-env\\Scripts\\activate
pip install torch --index-url https://download.pytorch.org/whl/cpu
pip install {wheel}
```

## Check your notebook

```bash
grade-check my_notebook.ipynb            # about a minute; the GIF's token labels are drawn blank
grade-check my_notebook.ipynb --full     # draws the labels too (a second or so more per frame)
```

Put your diagram image next to the notebook. Your notebook runs unchanged, every cell of it: it
loads `{model_id}` and gets the miniature. The plotting cell runs as you wrote it, but its
frames are drawn with the {n_tokens} token labels blank, which is several times faster and changes neither
the number of frames nor their size, so `p5.gif` is checked; the `tokens.gif` you upload is your
own Colab one. The command exits with 0 when every automated check passed, 1 otherwise.

Before the due date some feedback says what is wrong but not how to fix it. The diagram and the
written answer are graded by your TA after you submit. A feedback page (`feedback.html`) is
written too (`report.html`); the last line of the output says where.
"""


def _copy_tree(src: Path, dst: Path, root: Path) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(root)
        if (SKIP_PARTS.intersection(rel.parts) or path.suffix in SKIP_SUFFIXES
                or any(rel.as_posix() == p or rel.as_posix().startswith(p + "/") for p in LEFT_OUT)):
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _project() -> dict:
    return tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]


def _dependencies() -> list[str]:
    deps = []
    for dep in _project()["dependencies"]:
        name = re.split(r"[ <>=!~;\[]", dep, maxsplit=1)[0].strip().lower()
        if name not in STAFF_ONLY_DEPENDENCIES:
            deps.append(dep)
    return deps


def _readme(pack, wheel: str) -> str:
    words = pack.words()
    return README.format(python=_project().get("requires-python", ">=3.10"), wheel=wheel, title=pack.info.title,
                         model_name=words["model_name"], model_id=words["model_id"], n_layers=words["n_layers"],
                         n_tokens=words["n_tokens"])


def _pyproject(version: str, pack) -> str:
    deps = "\n".join(f"    {json.dumps(dep)}," for dep in _dependencies())
    requires = _project().get("requires-python", ">=3.10")
    return f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{KIT_NAME}"
version = "{version}"
description = "Student self-check for the notebook assignment: {pack.info.title}"
readme = "README.md"
requires-python = "{requires}"
dependencies = [
{deps}
]

[project.scripts]
grade-check = "grader.run.selfcheck:check_main"

[tool.setuptools.packages.find]
include = ["grader*", "miniature*"]
exclude = ["grader.manual*"]

[tool.setuptools.package-data]
grader = ["packs/DEFAULT", "packs/*/*.toml", "packs/*/*.md", "packs/*/*.py", "packs/*/*.txt", "packs/*/model/*.json",
          "packs/*/golden/*", "packs/*/tokenizer/*", "judge/rubric/checks/*.py", "judge/rubric/checks/pytest.ini", "report/templates/*", "judge/frozen/*"]
"""


def stage_source(stage: Path, dtypes: tuple[str, ...] | None = None, log=print, assignment: str | None = None) -> Path:
    """Lay out the kit's source tree in `stage` (a new, empty folder): the packages, the pack the kit checks
    (named in grader/packs/DEFAULT; copied in when it is a folder of the instructor's), the frozen goldens,
    pyproject.toml and README.md. Returns stage."""
    from grader.judge.golden import FROZEN_DTYPES, freeze
    from grader.settings import Settings
    from grader.spec.pack import DEFAULT_FILE, PACKS_DIR, load_pack

    pack = load_pack(assignment)
    for name in SHIPPED_PACKAGES:
        _copy_tree(SOURCE_ROOT / name, stage, SOURCE_ROOT)
    packs = stage / "grader" / "packs"
    if pack.folder.parent != PACKS_DIR:  # the instructor's own pack: it ships under its name
        shutil.rmtree(packs / pack.name, ignore_errors=True)
        _copy_tree(pack.folder, packs / pack.name, pack.folder)
    (packs / DEFAULT_FILE).write_text(pack.name + "\n")
    if pack.tokenizer.gguf_package:
        _freeze_tokenizer(pack, packs / pack.name, log)
    log(f"freezing the goldens of {pack.name}'s prompt ({', '.join(dtypes or FROZEN_DTYPES)}) ...")
    manifest = freeze(Settings(model="tiny", assignment=str(pack.folder)).golden_store(),
                      stage / "grader" / "judge" / "frozen", dtypes or FROZEN_DTYPES)
    version = f"{_project()['version']}+{manifest['revision'][:8]}"
    (stage / "pyproject.toml").write_text(_pyproject(version, pack))
    (stage / "README.md").write_text(_readme(pack, "<the wheel from your instructor>"))
    return stage


def _freeze_tokenizer(pack, staged: Path, log) -> None:
    """A tokenizer read from a GGUF package (SmolLM2's: a 90 MB wheel and the `gguf` reader) is laid out once
    here, into the kit's copy of the pack (`tokenizer/`), and that copy's [model.tokenizer] names the folder:
    the student installs neither."""
    from grader.spec.tables import replace_table
    from miniature.sources import tokenizer_folder

    log(f"freezing {pack.model.name}'s tokenizer from {pack.tokenizer.gguf_package} into the kit ...")
    names = tokenizer_folder(pack.tokenizer, staged / "tokenizer")
    block = (f"[model.tokenizer]  # frozen by `grade student-kit` from {pack.tokenizer.gguf_package}'s GGUF file\n"
             f"folder = \"tokenizer\"\nfiles = {json.dumps(sorted(names))}\n\n")
    toml = staged / "assignment.toml"
    toml.write_text(replace_table(toml.read_text(), "model.tokenizer", block))


def check_wheel(wheel: Path) -> list[str]:
    """Names in the wheel that a student kit must not hold (empty: fine)."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    bad = [n for n in names if n.startswith(FORBIDDEN)]
    if not any(n.startswith("grader/judge/frozen/") and n.endswith(".npz") for n in names):
        bad.append("(no frozen golden in grader/judge/frozen/)")
    return bad


def build_kit(kit_dir: Path, dtypes: tuple[str, ...] | None = None, log=print, assignment: str | None = None) -> Path:
    """Write KIT_DIR/<wheel>.whl and KIT_DIR/README.md; return the wheel's path."""
    kit_dir = Path(kit_dir)
    kit_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grade-kit-") as tmp:
        stage = stage_source(Path(tmp) / "src", dtypes, log, assignment)
        dist = Path(tmp) / "dist"
        log("building the wheel ...")
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--wheel-dir", str(dist), str(stage)], capture_output=True, text=True)
        wheels = sorted(dist.glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"building the kit's wheel failed (pip exit {proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-3000:]}")
        bad = check_wheel(wheels[0])
        if bad:
            raise RuntimeError(f"the kit's wheel holds what students must not get: {', '.join(bad[:10])}")
        for old in kit_dir.glob(f"{KIT_NAME.replace('-', '_')}-*.whl"):
            old.unlink()
        wheel = kit_dir / wheels[0].name
        shutil.copyfile(wheels[0], wheel)
    from grader.spec.pack import load_pack

    (kit_dir / "README.md").write_text(_readme(load_pack(assignment), wheel.name))
    return wheel


def run_student_kit(kit_dir: Path, assignment: str | None = None) -> int:
    """The CLI verb `grade student-kit KIT_DIR [--assignment PACK]`."""
    wheel = build_kit(Path(kit_dir), assignment=assignment)
    size = wheel.stat().st_size / 1e6
    print(f"wrote {wheel} ({size:.0f} MB) and {Path(kit_dir) / 'README.md'}: post both for the class. Students run\n"
          f"  pip install torch --index-url https://download.pytorch.org/whl/cpu\n  pip install {wheel.name}\n"
          "  grade-check my_notebook.ipynb [--full]")
    return 0
