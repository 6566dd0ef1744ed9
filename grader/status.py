"""How running one submission ended: one Status, with what a TA reads and whether it can be judged.

Worst first. A submission that blew up still ends with a status and a reason; only `ok`, the
run-time failures after the notebook started (`cell_errors`, `timeout`, `kernel_died`,
`extract_failed`) and `empty_notebook` (nothing ran, but its markdown answer and attached diagram are
still the TA's evidence) are judged: the others score 0 with their reason.

`interrupted` is not an end: the batch was stopped (Ctrl-C, SIGTERM) while the submission ran. It is
written to execution.json only, never to results.json, so the submission is not "done": no class
output counts it, and `grade --resume` grades it (as it retries a `grader_error`).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    NO_NOTEBOOK = "no_notebook"  # nothing gradable was submitted
    INVALID_NOTEBOOK = "invalid_notebook"  # not a readable Jupyter notebook
    EMPTY_NOTEBOOK = "empty_notebook"  # a readable notebook without code: no cells, or only markdown / empty cells
    TAMPERED = "tampered"  # the notebook disabled or replaced the grader's recording
    EXTRACT_FAILED = "extract_failed"  # the notebook ran but its results could not be read back
    KERNEL_DIED = "kernel_died"  # the kernel process ended (crash, os._exit, killed for memory)
    TIMEOUT = "timeout"  # a cell or the whole notebook ran past its time budget
    CELL_ERRORS = "cell_errors"  # ran to the end, some cells raised
    OK = "ok"  # ran to the end without errors
    GRADER_ERROR = "grader_error"  # the grader itself failed on this submission (a bug to report)
    INTERRUPTED = "interrupted"  # the batch was stopped while this ran; no result yet (`grade --resume`)

    @property
    def label(self) -> str:
        """What a TA reads on the report."""
        return _WORDS[self][0]

    @property
    def tone(self) -> str:
        """good / warn / bad: the colour it gets."""
        return _WORDS[self][1]

    @property
    def short(self) -> str:
        """A few words for the class table."""
        return _WORDS[self][2]

    @property
    def judgeable(self) -> bool:
        """Whether the checks run at all (a tampered or unreadable notebook gets none)."""
        return self not in (Status.NO_NOTEBOOK, Status.INVALID_NOTEBOOK, Status.GRADER_ERROR, Status.TAMPERED,
                            Status.INTERRUPTED)

    @property
    def done(self) -> bool:
        """Whether a result with this status is final: `grade --resume` grades again the ones that are not."""
        return self not in (Status.GRADER_ERROR, Status.INTERRUPTED)

    @classmethod
    def parse(cls, value: str | None) -> "Status | None":
        try:
            return cls(value)
        except ValueError:
            return None


_WORDS: dict[Status, tuple[str, str, str]] = {
    Status.OK: ("Ran without errors", "good", "ran"),
    Status.CELL_ERRORS: ("Ran to the end, but some cells raised errors", "warn", "cell errors"),
    Status.TIMEOUT: ("Stopped: ran out of time", "bad", "timed out"),
    Status.KERNEL_DIED: ("Stopped: the kernel died", "bad", "kernel died"),
    Status.EXTRACT_FAILED: ("Ran, but its results could not be read back", "bad", "extract failed"),
    Status.TAMPERED: ("Not graded: the notebook interfered with the grader", "bad", "tampered"),
    Status.NO_NOTEBOOK: ("Not graded: no notebook was submitted", "bad", "no notebook"),
    Status.INVALID_NOTEBOOK: ("Not graded: not a readable notebook", "bad", "invalid notebook"),
    Status.EMPTY_NOTEBOOK: ("Nothing ran: the notebook has no code", "bad", "no code"),
    Status.GRADER_ERROR: ("Grader error: needs a maintainer, not the student", "bad", "grader error"),
    Status.INTERRUPTED: ("Not graded yet: grading was interrupted (grade --resume finishes it)", "warn", "interrupted"),
}


def describe(value: str | None) -> tuple[str, str, str]:
    """(label, tone, short) of a status string, also for one this version does not know."""
    status = Status.parse(value)
    return (status.label, status.tone, status.short) if status else (str(value), "warn", str(value))


class CheckStatus(StrEnum):
    """How one rubric check ended (CheckResult.status), with the words each audience reads and its tone."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the check itself raised: a grader problem, not the student's
    MANUAL = "manual"  # a TA grades it

    @property
    def tone(self) -> str:
        return _CHECK_WORDS[self][0]

    @property
    def ta_label(self) -> str:
        """On the TA's report."""
        return _CHECK_WORDS[self][1]

    @property
    def student_label(self) -> str:
        """On the student's feedback page."""
        return _CHECK_WORDS[self][2]

    @property
    def symbol(self) -> str:
        """In the self-check's table, where the terminal can show it."""
        return _CHECK_WORDS[self][3]

    @property
    def ascii(self) -> str:
        """In the self-check's table, where it cannot."""
        return _CHECK_WORDS[self][4]

    @classmethod
    def parse(cls, value: str | None) -> "CheckStatus | None":
        try:
            return cls(value)
        except ValueError:
            return None


_CHECK_WORDS: dict[CheckStatus, tuple[str, str, str, str, str]] = {  # tone, TA, student, symbol, ascii
    CheckStatus.PASSED: ("good", "passed", "passed", "✓", "PASS"),
    CheckStatus.FAILED: ("bad", "failed", "not passed", "✗", "FAIL"),
    CheckStatus.ERROR: ("warn", "grader error", "not checked: grader problem", "!", "ERR "),
    CheckStatus.MANUAL: ("manual", "TA to grade", "graded by your TA", "…", "TODO"),
}
