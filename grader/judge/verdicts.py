"""Judge one executed submission in the grader process: compare, gather evidence, run the rubric.

Reads out/<id>/{execution.json, extracted.npz, executed.ipynb, files/}; returns a Judgement holding
every verdict and everything the report shows (hook groups, sphere panels), so the report only
renders. Never trusts the kernel: arrays are loaded without pickle, sizes were capped by the
executor, and the golden never entered the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.execute.records import ExecutionRecord, read_execution
from grader.io import SubmissionDir, load_npz
from grader.judge import evidence as ev
from grader.judge.comparison import Comparison, compare
from grader.judge.golden import Golden, GoldenStore
from grader.judge.hooks import HookGroup, HookSummary, hook_groups, summarize
from grader.judge.projections import SpherePanel, sphere_panels
from grader.results import CheckResult, Summary
from grader.judge.rubric.runner import not_graded, run_rubric
from grader.spec.pack import Assignment
from grader.status import Status
from grader.intake.submission import SubmissionInfo


@dataclass
class Context:
    """Everything a check may look at."""

    execution: ExecutionRecord
    comparison: Comparison
    evidence: ev.Evidence
    hooks: HookSummary
    assignment: Assignment  # the pack: model, layer count, prompt, family


@dataclass
class Judgement:
    """The verdicts on one submission and what the report shows of them."""

    execution: ExecutionRecord
    golden: Golden
    checks: list[CheckResult]
    comparison: Comparison | None = None  # None: the submission could not be judged
    evidence: ev.Evidence = field(default_factory=ev.Evidence)
    hooks: HookSummary = field(default_factory=lambda: summarize([]))
    hook_groups: list[HookGroup] = field(default_factory=list)
    spheres: list[SpherePanel] = field(default_factory=list)
    sphere_note: str = ""
    notebook: nbformat.NotebookNode | None = None  # the executed notebook
    carry: object | None = None  # grader/judge/carry.py CarryOutcome: Part 5 run again on correct captures
    carried: "Judgement | None" = None  # the verdicts of that run
    assignment: Assignment | None = None  # the pack it was judged for

    @property
    def judged(self) -> bool:
        return self.comparison is not None

    def mistakes(self) -> list[str]:
        """Short labels for the class overview: which mistake classes this submission shows."""
        labels = []
        if self.execution.status not in (Status.OK, Status.CELL_ERRORS):
            labels.append(f"status: {self.execution.status}")
        failed = {c.id for c in self.checks if c.status in ("failed", "error")}
        caps = self.comparison.captures if self.comparison else None
        if "p3.captures_match" in failed and caps and caps.dominant:
            site, offset = caps.dominant
            if site != "resid_pre" or offset:
                labels.append(f"captures: {site}" + (f" (layer {offset:+d})" if offset else ""))
        return labels + [f"failed {cid}" for cid in sorted(failed)]

    def summary(self, info: SubmissionInfo) -> Summary:
        rec, caps = self.execution, (self.comparison.captures if self.comparison else None)
        prompt = self.comparison.prompt if self.comparison else None
        found = self.evidence if self.judged else ev.Evidence()  # an unjudged submission is credited nothing
        return Summary(
            status=rec.status, reason=rec.reason, student_name=info.student_name, student_id=info.student_id,
            late=info.late, captures_site=caps.dominant[0] if caps and caps.dominant else None,
            captures_layer_offset=caps.dominant[1] if caps and caps.dominant else None,
            captures_layers_correct=caps.n_correct if caps else 0, hook_sites=dict(self.hooks.placements),
            gif_frames=found.gif.frames, answer=found.answer, diagrams=found.diagrams,
            prompt_tokens=prompt.token_counts if prompt else [], ran_golden_prompt=prompt.ran_golden if prompt else False,
            uses_reference=bool(rec.project_imports), project_imports=rec.project_imports,
            cell_errors=len(rec.cell_errors), execution_seconds=rec.seconds, notes=rec.notes,
            mistakes=self.mistakes(), notebook_sha256=info.notebook_sha256,
            carried_forward=self.carry.to_json() if self.carry is not None else {})


def gather_evidence(rec: ExecutionRecord, out_dir: Path, attachments: list[str],
                    pack: Assignment) -> tuple[ev.Evidence, object]:
    nb = _read_notebook(out_dir)
    files_dir = out_dir / "files"
    found = ev.Evidence(
        printed_model=ev.printed_model(nb, pack.family),
        diagrams=ev.diagrams(nb, files_dir, attachments),
        gif=ev.gif_info(files_dir, rec.files),
        answer=ev.answer_text(nb, pack),
        files=[f["name"] for f in rec.files],
        submitted=ev.submitted_view(out_dir / "submitted"),
    )
    return found, nb


def judge(out_dir: Path, store: GoldenStore, rubric: dict, attachments: list[str]) -> Judgement:
    """Every verdict on the submission executed into out_dir."""
    rec = read_execution(SubmissionDir(out_dir).execution)
    golden = store.get()
    pack, family = store.pack, store.pack.family
    found, nb = gather_evidence(rec, out_dir, attachments, pack)
    hooks = summarize(rec.hooks or [], family)
    if not rec.status.judgeable:  # the evidence is shown to the TA, not used for grading
        return Judgement(execution=rec, golden=golden, checks=not_graded(rubric, rec.reason), evidence=found,
                         hooks=hooks, hook_groups=hook_groups(rec.hooks or [], family), notebook=nb,
                         assignment=pack)
    extracted = load_npz(SubmissionDir(out_dir).extracted)
    comparison = compare(rec, extracted, store)
    checks = run_rubric(Context(execution=rec, comparison=comparison, evidence=found, hooks=hooks, assignment=pack),
                        rubric)
    judgement = Judgement(execution=rec, golden=golden, checks=checks, comparison=comparison, evidence=found,
                          hooks=hooks, hook_groups=hook_groups(rec.hooks, family), notebook=nb, assignment=pack)
    if comparison.projections is not None:
        caps = comparison.captures
        wrong_site = bool(caps) and any(not ls.correct for ls in caps.layers)
        judgement.spheres, judgement.sphere_note = sphere_panels(comparison.projections, extracted, golden, wrong_site)
    return judgement


def _read_notebook(out_dir: Path):
    """The executed notebook, or None when it is missing or unreadable."""
    path = SubmissionDir(out_dir).executed
    if not path.is_file():
        return None
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: the report says so where it matters
        return None
