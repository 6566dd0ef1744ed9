"""What grading one submission produced, and its one serialisation: results.json (Gradescope's schema).

`Grade` is built by the pipeline from the judge's verdicts; `Grade.to_results()` is results.json
(`score`, `execution_time`, `output`, `tests[]`, `extra_data`). `Result.read(out_dir)` is the typed
view every later reader (reports, gradebook, batch) uses: nobody reads `extra_data` by key. A TA
check's feedback is stored with MANUAL_PREFIX in results.json (what Gradescope shows) and read back
without it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from grader.intake.submission import SubmissionInfo
from grader.io import SubmissionDir, read_json
from grader.status import CheckStatus, Status

MANUAL_PREFIX = "Graded by hand by a TA; 0 points until then."


@dataclass
class CheckResult:
    id: str
    title: str
    max_points: float
    points: float
    status: CheckStatus  # passed, failed, manual, error (a plain string is turned into one)
    feedback: str  # what the student reads (for a TA check: the evidence, without MANUAL_PREFIX)
    manual: bool = False
    notes: list[str] = field(default_factory=list)
    # The how-to-fix parts of `feedback` (each marked in the check with `hint(...)`, one per line): left
    # out of what a student sees at "brief" visibility. `feedback` always holds the full text.
    hint: str = ""
    judged_on: str = ""  # "carried_forward": credited on the run with correct captures (grader/judge/carry.py)

    def __post_init__(self):
        self.status = CheckStatus(self.status)  # ValueError for a status no reader knows

    @property
    def output(self) -> str:
        return "\n".join([self.feedback, *self.notes]).strip()

    def text(self, visibility: str = "full") -> str:
        """The feedback a student sees: "full" is `output`; "brief" says what is wrong, without the hints."""
        if visibility != "brief" or not self.withheld:
            return self.output
        return brief_text(self.output, self.hint) or ("" if self.status == "passed" else "This check did not pass.")

    @property
    def withheld(self) -> bool:
        """Whether "brief" visibility leaves something out of this check's feedback."""
        return bool(self.hint.strip())

    def to_test(self) -> dict:
        """One entry of Gradescope's tests[]."""
        feedback = f"{MANUAL_PREFIX} {self.feedback}".strip() if self.manual else self.feedback
        output = "\n".join([feedback, *self.notes]).strip()
        if self.manual:  # graded by a TA (in Gradescope: a separate, manually graded question): never "failed"
            return {"name": f"{self.id}: {self.title}", "score": 0.0, "max_score": 0.0, "output": output,
                    "visibility": "visible", "tags": ["manual"]}
        return {
            "name": f"{self.id}: {self.title}",
            "score": self.points,
            "max_score": self.max_points,
            "status": "passed" if self.status == "passed" else "failed",
            "output": output if output else "Passed.",
            "visibility": "visible",
            "tags": [self.status] if self.status == "error" else [],
        }

    def to_summary(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status, "points": self.points,
                "max_points": self.max_points, "manual": self.manual, **({"hint": self.hint} if self.hint else {}),
                **({"judged_on": self.judged_on} if self.judged_on else {})}

    @classmethod
    def from_json(cls, summary: dict, test: dict | None) -> "CheckResult":
        output = (test or {}).get("output", "")
        if summary.get("manual") and output.startswith(MANUAL_PREFIX):
            output = output[len(MANUAL_PREFIX):].strip()
        hint = summary.get("hint")  # absent from the results.json of earlier versions
        return cls(id=summary["id"], title=summary.get("title", summary["id"]),
                   max_points=float(summary.get("max_points", 0)), points=float(summary.get("points", 0)),
                   status=CheckStatus.parse(summary.get("status")) or CheckStatus.ERROR, feedback="" if output == "Passed." else output,
                   manual=bool(summary.get("manual")), hint=hint if isinstance(hint, str) else "",
                   judged_on=str(summary.get("judged_on") or ""))


def brief_text(feedback: str, hint: str) -> str:
    """feedback without its hint parts (one per line of `hint`), tidied: what is wrong, not how to fix it."""
    text = feedback
    for part in (p.strip() for p in hint.split("\n") if p.strip()):
        text = text.replace(part, " ")
    lines = []
    for line in text.split("\n"):
        line = re.sub(r" +([.,;:)])", r"\1", re.sub(r"[ \t]+", " ", line)).strip()
        if line:
            lines.append(re.sub(r"[:;,]$", ".", line))
    return "\n".join(lines)


@dataclass
class Summary:
    """extra_data: what the grader found, for reports, the gradebook and the class index."""

    status: Status
    reason: str
    student_name: str | None = None
    student_id: str | None = None
    late: bool = False
    captures_site: str | None = None  # the site the captures equal most often
    captures_layer_offset: int | None = None  # ... and how many layers away
    captures_layers_correct: int = 0
    hook_sites: dict[str, int] = field(default_factory=dict)  # "model.layers.N.mlp (forward hook)" -> count
    gif_frames: int | None = None
    answer: str | None = None
    diagrams: list[str] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    ran_golden_prompt: bool = False
    uses_reference: bool = False
    project_imports: list[str] = field(default_factory=list)
    cell_errors: int = 0
    execution_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)
    notebook_sha256: str | None = None  # the submitted notebook's: manual points are given for this version
    carried_forward: dict = field(default_factory=dict)  # Part 5 run again on correct captures (judge/carry.py)

    def to_json(self) -> dict:
        d = asdict(self)
        if not d["carried_forward"]:  # absent unless that run happened: other results.json stay as they were
            del d["carried_forward"]
        return d

    @classmethod
    def from_json(cls, data: dict) -> "Summary":
        known = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in data.items() if k in known})
        s.status = Status.parse(data.get("status")) or data.get("status")
        return s


@dataclass
class Grade:
    """One graded submission: who, how the run ended, every check's verdict."""

    submission: SubmissionInfo
    summary: Summary
    checks: list[CheckResult]
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        return self.summary.status

    @property
    def reason(self) -> str:
        return self.summary.reason

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks), 4)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_points for c in self.checks), 4)

    @property
    def auto_max_score(self) -> float:
        return round(sum(c.max_points for c in self.checks if not c.manual), 4)

    @property
    def manual_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.manual]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in ("failed", "error")]

    def header(self) -> str:
        """The results' `output`: how the run went, and what a TA still grades."""
        output = {
            Status.OK: "Your notebook ran without errors.",
            Status.CELL_ERRORS: f"Your notebook ran to the end; {self.summary.cell_errors} cell(s) raised errors.",
        }.get(self.status, f"Your notebook did not run normally ({self.status}): {self.reason}.")
        manual = self.manual_checks
        if manual:
            output += (f" Automated score: {self.score:g} of {self.auto_max_score:g}. "
                       f"{sum(c.max_points for c in manual):g} more points ({', '.join(c.id for c in manual)}) are "
                       "graded by a TA.")
        return output

    def to_results(self) -> dict:
        """Gradescope's results.json."""
        return {
            "score": self.score,
            "execution_time": round(self.seconds, 1),
            "output": self.header(),
            "tests": [c.to_test() for c in self.checks],
            "extra_data": {**self.summary.to_json(), "checks": [c.to_summary() for c in self.checks]},
        }


@dataclass
class Result:
    """results.json and submission.json of one graded submission, read back."""

    id: str
    score: float
    output: str
    checks: list[CheckResult]
    summary: Summary
    submission: SubmissionInfo
    execution_time: float = 0.0

    @property
    def status(self) -> Status:
        return self.summary.status

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.checks)

    @property
    def auto_max_score(self) -> float:
        return sum(c.max_points for c in self.checks if not c.manual)

    @classmethod
    def from_json(cls, results: dict, submission: dict | None, default_id: str) -> "Result":
        extra = dict(results.get("extra_data") or {})
        tests = {t.get("name", "").partition(": ")[0]: t for t in results.get("tests", [])}
        checks = [CheckResult.from_json(c, tests.get(c["id"])) for c in extra.pop("checks", [])]
        return cls(id=default_id, score=float(results.get("score", 0)), output=results.get("output", ""),
                   checks=checks, summary=Summary.from_json({"status": None, "reason": "", **extra}),
                   submission=SubmissionInfo.from_json(submission, default_id),
                   execution_time=float(results.get("execution_time", 0) or 0))

    @classmethod
    def read(cls, out_dir: Path) -> "Result | None":
        """The result in out_dir, or None when it is not complete (no readable results.json)."""
        folder = SubmissionDir(out_dir)
        if not is_complete(folder):
            return None
        return cls.from_json(read_json(folder.results), read_json(folder.submission), folder.name)


def is_complete(out_dir: Path) -> bool:
    """Whether out_dir holds a finished result (results.json is written last): Result.read's test, one place."""
    results = read_json(SubmissionDir(out_dir).results)
    return isinstance(results, dict) and "score" in results and "tests" in results


def load_results(out_root: Path) -> list[Result]:
    """Every complete result under out_root, sorted by submission id."""
    found = (Result.read(p.parent) for p in sorted(Path(out_root).glob("*/" + SubmissionDir("").results.name)))
    return [r for r in found if r is not None]
