"""Error carried forward by re-execution: one mistake costs one part.

When Part 3's captures are wrong, missing or partial (a wrong hook site, every layer written to one key,
hooks removed before the forward, a crash in the hook cell, a generate() step), the student's notebook
runs again in a fresh kernel with the reference's correct captures put into their own variable, in
their own container and form, right after their Part 4 forward (grader/execute/carry.py). Part 5's
checks are then judged on that run too, and a check that fails on the student's own captures but
passes on correct ones is credited, with a note saying why: only what the student's later code does
right on correct inputs earns points (a Part 5 with its own mistake still fails the check it breaks).

    CarryForwardConfig  the switch and the checks that may be credited this way (one place)
    upstream_problem    whether a notebook needs the second run (never a correct one)
    carry_forward       plan -> run -> judge -> merge, called by grader/pipeline.py
    CarryOutcome        what happened, for results.json (extra_data.carried_forward) and the report

When Part 4 ran other tokens, Part 5 is already judged on the student's own tokens (and the injected
captures are the reference's on those tokens), so a prompt mistake alone never triggers this run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from grader.io import SubmissionDir, write_json
from grader.judge import carry_source
from grader.judge.golden import GoldenStore
from grader.results import CheckResult
from grader.spec.sites import TARGET_SITE, describe
from grader.status import Status

DEFAULT_CHECKS = frozenset({"p5.projection_shape", "p5.unit_norm", "p5.projection_match", "p5.gif"})
UPSTREAM_CHECKS = ("p3.captures_match",)  # a failure here (captures wrong, missing or partial) triggers the run
PART5_WORDS = {"p5.projection_match": "PCA and projection", "p5.projection_shape": "3 x N shape",
               "p5.unit_norm": "normalisation", "p5.gif": "tokens.gif"}  # in the order the note lists them


@dataclass(frozen=True)
class CarryForwardConfig:
    """The one place the carried-forward run is configured: on/off and the checks it may credit.

    Read from the pack (`from_pack`): its `[carry_forward] enabled` and its checks' `carry_forward = true`
    (grader/spec/pack.py, grader/spec/rubric.py); a pack that marks no check gets DEFAULT_CHECKS (the four
    automated Part 5 checks: each is computed from the captures by the student's own later code).
    `Settings.carry_forward` (`grade --no-carry-forward`) turns it off for one run."""

    enabled: bool = True
    checks: frozenset[str] = DEFAULT_CHECKS

    @classmethod
    def from_pack(cls, pack) -> "CarryForwardConfig":
        entries = pack.rubric.checks.items()
        marked = [cid for cid, entry in entries if getattr(entry, "carry_forward", None) is not None]
        checks = frozenset(cid for cid, entry in entries if getattr(entry, "carry_forward", None))
        return cls(enabled=bool(pack.carry_forward.enabled), checks=checks if marked else DEFAULT_CHECKS)


@dataclass
class CarryOutcome:
    """What the carried-forward run did; to_json() is results.json's extra_data.carried_forward."""

    ran: bool
    reason: str  # why Part 5 was run again, in a student's words ("your Part 3 captures are ...")
    problem: str = ""  # why it could not run, or why it credits nothing
    variable: str | None = None
    how_chosen: str = ""
    injected_after_cell: int | None = None
    found: str = ""  # what the variable was right after the forward ("dict of 1 item(s)", "missing")
    built: str = ""  # what was put there
    hooks_removed: int = 0
    plot: dict | None = None  # the provided plotting cell's dry run
    status: str | None = None  # the carried run's status
    checks: dict[str, dict] = field(default_factory=dict)  # id -> {"own": status, "carried": status, "credited"}
    note: str = ""  # the sentence a student reads on the checks it concerns

    @property
    def credited(self) -> list[str]:
        return [cid for cid, c in self.checks.items() if c.get("credited")]

    def to_json(self) -> dict:
        d = asdict(self)
        d["judged_on_carried_run"] = self.credited
        return d


def upstream_problem(judgement, cfg: CarryForwardConfig) -> str | None:
    """None when no second run is due (carry-forward off, a correct Part 3, an unjudgeable run, a notebook
    that uses the reference code); else what is wrong upstream, in a student's words."""
    rec = judgement.execution
    if not cfg.enabled or not judgement.judged or rec.status not in (Status.OK, Status.CELL_ERRORS) \
            or rec.project_imports:
        return None
    failed = {c.id for c in judgement.checks if c.status in ("failed", "error")}
    if not failed & set(UPSTREAM_CHECKS) or not any(c.id in cfg.checks for c in judgement.checks):
        return None
    caps = judgement.comparison.captures
    if caps is None:
        errors = [c for c in rec.cell_errors]
        if errors:
            first = errors[0]
            return (f"nothing was captured in Part 3 ({first.named} raised {first.ename}: "
                    f"{(first.evalue or '')[:120]})")
        return "no Part 3 captures were found after your notebook ran"
    sites = {ls.site for ls in caps.layers}
    if "generate_step" in sites:
        return "your Part 3 captures hold one token per layer, the last step of generate()"
    present = len(caps.layers)
    wrong = [ls for ls in caps.layers if not ls.correct]
    if wrong and caps.dominant and caps.dominant[0] not in ("resid_pre", "unknown", "shape_mismatch"):
        site = caps.dominant[0]
        same = [ls for ls in wrong if ls.site == site and ls.matched_layer is not None]
        example = next((ls for ls in same if ls.layer == 7), same[0] if same else None)
        if example is not None:
            family = judgement.assignment.family if getattr(judgement, "assignment", None) is not None else None
            what = describe(site, example.matched_layer, family) if family is not None else site
            return (f"your Part 3 captures are not the residual stream entering each layer (resid_pre): your layer "
                    f"{example.layer} capture is {what}")
    if present < judgement.golden.num_layers:
        return f"your Part 3 captures hold {present} of the {judgement.golden.num_layers} layers"
    return "your Part 3 captures are not the residual stream entering each layer"


def _inputs(judgement) -> tuple[list[int], str, str]:
    """The tokens the student ran (their ids, "prompt" or "student_prompt") and the dtype of their model."""
    rec, golden = judgement.execution, judgement.golden
    dtype = (rec.model or {}).get("dtype") or "float32"
    dtype = dtype if dtype in ("bfloat16", "float16") else "float32"
    runs = [f for f in rec.forwards if f.get("input_ids") and (f.get("n_tokens") or 0) > 1]
    tokens, ids = "prompt", golden.token_ids
    if runs and not any(list(f["input_ids"]) == golden.token_ids for f in runs):
        ids, tokens = list(max(runs, key=lambda f: f["n_tokens"])["input_ids"]), "student_prompt"
    return ids, tokens, dtype


def _arrays(judgement, store: GoldenStore, ids: list[int], tokens: str, dtype: str) -> list[np.ndarray]:
    """The reference's resid_pre of every layer on those tokens ([N, d] float32); LookupError when they
    cannot be had."""
    golden = judgement.golden
    ref = golden if (tokens == "prompt" and dtype == "float32") else store.get(ids, dtype)
    return [np.asarray(ref.site(TARGET_SITE, i), np.float32) for i in range(ref.num_layers)]


def plan(judgement):
    """The CarryPlan for this notebook, or (None, why no form could be found)."""
    from grader.execute.carry import CarryPlan

    nb, rec = judgement.notebook, judgement.execution
    if nb is None:
        return None, "Part 5 could not be run again on correct captures: the executed notebook could not be read"
    after, where = carry_source.inject_cell(rec.forwards, nb)
    if after is None:
        return None, f"Part 5 could not be run again on correct captures: {where}"
    if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells[after + 1:]):
        return None, ""  # no Part 5 code at all: nothing to run again, nothing to say
    caps = judgement.comparison.captures
    variable, fallback, how = carry_source.find_variable(nb, after)  # the fallback form: what the hooks write
    if caps is not None:  # the variable the captures were found in wins
        variable, how = caps.variable.split("[")[0], f"your captures variable `{caps.variable.split('[')[0]}`"
    elif variable is None:
        return None, f"Part 5 could not be run again on correct captures: {how}"
    plot_cell, plot_var = carry_source.plotting_cell(nb, after, getattr(judgement, "assignment", None))
    return CarryPlan(variable=variable, inject_after=after, fallback=fallback, plot_cell=plot_cell,
                     plot_variable=plot_var, how_chosen=f"{how}, put there after {where}"), ""


def carry_forward(judgement, sub, out_dir: Path, execute_cfg, store: GoldenStore, rubric: dict,
                  cfg: CarryForwardConfig | None = None, stored: bool = False):
    """The judgement, with Part 5 also judged on the carried-forward run when Part 3 went wrong. With `stored`
    (`grade rejudge`), the run a batch already made in out_dir/carry is judged again and nothing is executed;
    when there is none that fits, a note says how to make it (`grade PATHS --only ID`)."""
    pack = getattr(store, "pack", None)
    cfg = cfg or (CarryForwardConfig.from_pack(pack) if pack is not None else CarryForwardConfig())
    reason = upstream_problem(judgement, cfg)
    if reason is None:
        return judgement
    checks = list(judgement.checks)
    try:
        return _carry_forward(judgement, reason, sub, out_dir, execute_cfg, store, rubric, cfg, stored)
    except LookupError as exc:  # rejudge: no stored run for what judging asks now
        judgement.checks, judgement.carry, judgement.carried = checks, None, None
        judgement.execution.notes.append(f"Part 5 was not judged again on correct captures ({exc}); grade this "
                                         f"submission again with `grade PATHS --out OUT --only {out_dir.name}` to do so")
        return judgement
    except Exception as exc:  # noqa: BLE001 - a bug here must not cost the grade of the first run
        judgement.checks, judgement.carry, judgement.carried = checks, None, None
        judgement.execution.notes.append(f"Part 5 could not be run again on correct captures (a grader problem: "
                                         f"{exc.__class__.__name__}: {exc})")
        return judgement


def _carry_forward(judgement, reason, sub, out_dir, execute_cfg, store, rubric, cfg, stored=False):
    from grader.execute.carry import read_carried, run_carried
    from grader.judge.verdicts import judge

    the_plan, problem = plan(judgement)
    outcome = CarryOutcome(ran=False, reason=reason, problem=problem)
    arrays = None
    if the_plan is not None:
        ids, tokens, dtype = _inputs(judgement)
        try:
            arrays = None if stored else _arrays(judgement, store, ids, tokens, dtype)
        except LookupError as exc:
            the_plan, outcome.problem = None, f"Part 5 could not be run again on correct captures: {exc}"
    if the_plan is None:
        if not outcome.problem:
            return judgement
        judgement.carry = outcome
        return _annotate(judgement, outcome, cfg)
    the_plan.tokens, the_plan.dtype = tokens, dtype
    if stored:
        rec, info = read_carried(out_dir, the_plan)
    else:
        rec, info = run_carried(sub, out_dir, execute_cfg, the_plan, arrays)
    carried = judge(SubmissionDir(out_dir).carry, store, rubric, [])
    if carried.judged:
        write_json(SubmissionDir(out_dir).carry.comparison, carried.comparison.to_json())
    injected = info.get("injected") or {}
    outcome = replace(outcome, ran=True, variable=the_plan.variable, how_chosen=the_plan.how_chosen,
                      injected_after_cell=the_plan.inject_after, found=injected.get("found", ""),
                      built=injected.get("built", ""), hooks_removed=int(injected.get("hooks_removed") or 0),
                      plot=info.get("plot"), status=str(rec.status))
    outcome.reason = _refine(reason, outcome, judgement)
    if not injected:
        outcome.problem = ("the correct captures could not be put into your variable: "
                           + "; ".join(info.get("errors") or ["the run stopped before your Part 4 forward"]))
    elif not carried.judged:
        outcome.problem = f"the run on correct captures could not be judged ({rec.status}: {rec.reason})"
    return merge(judgement, carried, outcome, cfg)


def _refine(reason: str, outcome: CarryOutcome, judgement) -> str:
    """Say what the variable held right after the forward when that explains it better."""
    hooks = judgement.hooks
    if judgement.comparison.captures is None and outcome.found.endswith(" of 1 item(s)") and len(hooks.layers) > 1:
        return (f"your hooks wrote every layer into the same entry of `{outcome.variable}` (it held 1 item after "
                "your forward)")
    if judgement.comparison.captures is None and outcome.found.endswith(" of 0 item(s)"):
        gone = "; your hooks had been removed before it ran" if outcome.hooks_removed == 0 and hooks.total else ""
        return f"`{outcome.variable}` was empty after your Part 4 forward{gone}"
    return reason


def _gif_from_dry_run(check: CheckResult, outcome: CarryOutcome, n_layers: int) -> CheckResult:
    """p5.gif on the carried run when the provided plotting cell was not re-run (it is the assignment's code)."""
    plot = outcome.plot or {}
    name = plot.get("variable")
    if plot.get("ename"):
        return replace(check, points=0.0, status="failed", notes=[], hint="",
                       feedback=f"On correct captures, the provided plotting cell fed `{name}` would raise "
                                f"{plot['ename']}: {plot.get('evalue')} after {plot.get('frames', 0)} frame(s).")
    frames = int(plot.get("frames") or 0)
    ok = frames == n_layers
    return replace(check, points=check.max_points if ok else 0.0, status="passed" if ok else "failed", notes=[],
                   hint="", feedback=f"The provided plotting cell (not re-run: it is the assignment's own code) reads "
                                     f"`{name}` for all {frames} layers without an error, so it writes {frames} frames.")


def merge(judgement, carried, outcome: CarryOutcome, cfg: CarryForwardConfig):
    """Credit each creditable check that fails on the student's captures and passes on correct ones."""
    own = {c.id: c for c in judgement.checks}
    theirs = {c.id: c for c in carried.checks} if carried.judged and not outcome.problem else {}
    if theirs and outcome.plot is not None and "p5.gif" in theirs:
        theirs["p5.gif"] = _gif_from_dry_run(theirs["p5.gif"], outcome, judgement.golden.num_layers)
    for cid in sorted(cfg.checks & set(own)):
        mine, other = own[cid], theirs.get(cid)
        outcome.checks[cid] = {"own": mine.status, "carried": other.status if other else None,
                               "credited": bool(other and mine.status != "passed" and other.status == "passed"
                                                and other.points > mine.points)}
    order = [*PART5_WORDS, *sorted(set(outcome.checks) - set(PART5_WORDS))]
    right = [PART5_WORDS.get(cid, cid) for cid in order if outcome.checks.get(cid, {}).get("carried") == "passed"]
    if outcome.problem:
        outcome.note = f"Part 5 could not be run again on correct captures ({outcome.reason}): {outcome.problem}."
    elif right:
        outcome.note = (f"Part 5 was also run on correct captures, because {outcome.reason}: your "
                        f"{_join(right)} {'is' if len(right) == 1 else 'are'} right on them"
                        + (" (no points lost for Part 5)." if all(c["carried"] == "passed" for c in outcome.checks.values())
                           else "."))
    else:
        outcome.note = f"Part 5 was also run on correct captures, because {outcome.reason}."
    checks = []
    for c in judgement.checks:
        state, other = outcome.checks.get(c.id), theirs.get(c.id)
        if state is None:
            checks.append(c)
        elif state["credited"]:
            checks.append(replace(other, feedback=f"{outcome.note} {other.feedback}".strip(),
                                  notes=[*other.notes, f"On your own captures: {c.output}"],
                                  hint=_hints(other, c), judged_on="carried_forward"))
        elif c.status != "passed" and other is not None:
            checks.append(replace(c, feedback=f"{c.feedback} {outcome.note} On them this check still fails: "
                                              f"{other.output}".strip(), hint=_hints(c, other)))
        else:
            checks.append(replace(c, notes=[*c.notes, outcome.note]))
    judgement.checks = checks
    judgement.carry = outcome
    judgement.carried = carried
    return judgement


def _annotate(judgement, outcome: CarryOutcome, cfg: CarryForwardConfig):
    """No second run was possible: say so on the creditable checks that failed."""
    outcome.note = f"Part 5 could not be run again on correct captures ({outcome.reason}): " \
                   f"{outcome.problem.split(': ', 1)[-1]}."
    judgement.checks = [replace(c, notes=[*c.notes, outcome.note]) if c.id in cfg.checks and c.status != "passed"
                        else c for c in judgement.checks]
    return judgement


def _hints(*checks: CheckResult) -> str:
    """The how-to-fix parts of both runs' feedback (left out at "brief" visibility), one per line."""
    return "\n".join(dict.fromkeys(h for c in checks for h in c.hint.split("\n") if h.strip()))


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
