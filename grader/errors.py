"""The grader's errors: one base, `GraderError`, and the two kinds every caller tells apart.

    GraderError                  anything the grader raises on purpose
      UsageError                 bad input from the user: the CLIs print the message alone (exit 2)
        PackError                an assignment pack or rubric file that is not valid (names the key)
        ModelNotFoundError       --model names nothing that can be loaded
        UnsupportedModelError    a model or tokenizer this assignment cannot be graded on
        DeviceUnavailableError   --device asks for hardware this machine lacks
      StageError                 a stage could not do its work on one submission (still a result)

Each class also subclasses the built-in it refines (`PackError` is a ValueError, `ModelNotFoundError` a
FileNotFoundError), so code that catches the built-in keeps working. Stage modules define their own
errors on top of these (`KernelDiedError(StageError, RuntimeError)`, `GoldenUnavailable(StageError,
LookupError)`, ...). Nothing here imports torch: the CLIs catch these cheaply.
"""


class GraderError(Exception):
    """Anything the grader raises on purpose."""


class UsageError(GraderError):
    """Bad input from the user; the CLI prints the message alone, without a traceback, and exits 2."""


class PackError(UsageError, ValueError):
    """An assignment pack (assignment.toml) or a rubric override that is not valid: the message names the
    file, the key, what was expected and what was found."""


class ModelNotFoundError(UsageError, FileNotFoundError):
    pass


class UnsupportedModelError(UsageError, TypeError):
    pass


class DeviceUnavailableError(UsageError, RuntimeError):
    pass


class StageError(GraderError):
    """A stage (execute, judge, report) could not do its work on one submission; the pipeline turns it into
    a result with the reason, never a crash of the batch."""
