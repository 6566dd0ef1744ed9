"""The rubric as data: each check's points, whether it runs, how much of its feedback a student sees, its
title, whether error carried forward may credit it; and the late policy.

Written in the assignment pack (assignment.toml [checks."<id>"] and [late]) and, for one run, in an
override file (`grade --rubric my_rubric.toml`, the same two sections; what it sets wins, what it leaves
out keeps the pack's value). A check's points come from, in order: the override, the pack, the points
declared on the check itself (`@pytest.mark.points` in grader/judge/rubric/checks). Which ids exist is known
to grader/judge/rubric (the checks' markers); `grader.judge.rubric.config.load` checks the ids.

    [checks."p3.hook_site"]
    points = 10
    enabled = true
    self_check = "brief"   # what the student self-check (grade-check) shows: "full" or "brief"
    released = "full"      # what the feedback released after the due date shows
    title = "Hooks are placed where the layer's input can be read"
    carry_forward = false  # may Part 5's re-run on correct inputs credit it (grader's issue 18)

    [late]
    penalty = 0.1          # a fraction of the points earned, 0..1
    points = 0             # points subtracted
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader.errors import PackError
from grader.spec.tables import at_least, between, check, one_of, only_tables, read_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VISIBILITIES = ("full", "brief")
AUDIENCES = ("self_check", "released")  # the student self-check; the feedback released after the due date
OVERRIDE_SECTIONS = ("checks", "late")


@dataclass(frozen=True)
class CheckEntry:
    """One check as a rubric sets it; None everywhere means "not set here"."""

    points: float | None = check(at_least(0), None)  # None: the points declared on the check
    enabled: bool | None = None  # false drops the check from grading
    self_check: str | None = check(one_of(*VISIBILITIES), None)  # "brief": what is wrong, not how to fix it
    released: str | None = check(one_of(*VISIBILITIES), None)
    title: str | None = None  # {model_name}, {n_layers}, {n_tokens} are filled in from the pack
    carry_forward: bool | None = None  # Part 5's re-run on correct inputs may credit this check

    def over(self, base: "CheckEntry") -> "CheckEntry":
        """This entry's settings on top of `base`'s."""
        return replace(base, **{k: v for k, v in self.__dict__.items() if v is not None})


@dataclass(frozen=True)
class LatePolicy:
    """[late]: `penalty = 0.1` (a fraction of the points earned) or `points = 10` (subtracted)."""

    penalty: float = check(between(0, 1), 0.0)  # a fraction of the points earned
    points: float = check(at_least(0), 0.0)  # points subtracted

    @property
    def fraction(self) -> float:
        return self.penalty

    def deduction(self, earned: float, late: bool) -> float:
        if not late:
            return 0.0
        return round(min(earned, earned * self.penalty + self.points), 4)

    @property
    def active(self) -> bool:
        return bool(self.penalty or self.points)

    def describe(self) -> str:
        parts = ([f"{self.penalty:.0%} of the points"] if self.penalty else []) + \
                ([f"{self.points:g} points"] if self.points else [])
        return " + ".join(parts) or "no penalty"


@dataclass(frozen=True)
class Rubric:
    checks: dict[str, CheckEntry] = field(default_factory=dict)
    late: LatePolicy = field(default_factory=LatePolicy)
    source: str = ""  # where it was read from, for messages
    source_sets_late: bool = False  # it wrote a [late] table (an override's all-zero [late] still wins)

    def entry(self, check_id: str) -> CheckEntry:
        return self.checks.get(check_id, CheckEntry())

    def enabled(self, check_id: str) -> bool:
        return self.entry(check_id).enabled is not False

    def points(self, check_id: str, declared: float) -> float:
        points = self.entry(check_id).points
        return float(declared if points is None else points)

    def visibility(self, check_id: str, audience: str) -> str:
        """'full' or 'brief': how much of a check's feedback the audience ('self_check' or 'released') sees."""
        if audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, found {audience!r}")
        return getattr(self.entry(check_id), audience) or "full"

    def with_override(self, override: "Rubric") -> "Rubric":
        """This rubric with an override file's settings on top (check by check, field by field)."""
        ids = list(dict.fromkeys([*self.checks, *override.checks]))
        checks = {cid: override.entry(cid).over(self.entry(cid)) for cid in ids}
        late = override.late if override.source_sets_late else self.late
        return Rubric(checks=checks, late=late, source=f"{self.source} + {override.source}",
                      source_sets_late=self.source_sets_late or override.source_sets_late)


def read_rubric(data: dict, where: str, sections: tuple[str, ...] | None = None) -> Rubric:
    """The [checks] and [late] tables of a parsed TOML file; PackError on any problem."""
    if sections is not None:
        only_tables(data, sections, where)
    checks = data.get("checks", {})
    if not isinstance(checks, dict):
        raise PackError(f"{where}: expected [checks.\"<id>\"] tables, found {checks!r}")
    entries = {cid: read_table(CheckEntry, entry, f"{where} [checks.{cid!r}]") for cid, entry in checks.items()}
    late = read_table(LatePolicy, data.get("late", {}), f"{where} [late]")
    return Rubric(checks=entries, late=late, source=where, source_sets_late="late" in data)


def read_toml(path: Path, what: str, error: type[Exception] = PackError, expected: str = "a TOML file") -> dict:
    """A TOML file (`what` says which, as messages name it), or `error` saying why it cannot be read: the one
    reader of the pack file and of a rubric file (grader/judge/rubric/config.read_rubric_file)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; expected {expected}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path} is not valid TOML: {exc}") from None


def load_override(path: Path) -> Rubric:
    """A rubric override file (`--rubric`): [checks."<id>"] and [late] only."""
    return read_rubric(read_toml(path, "rubric file"), str(path), OVERRIDE_SECTIONS)
