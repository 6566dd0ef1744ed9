"""The rubric file: points per check id and which checks are enabled (rubric.toml)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_RUBRIC = Path(__file__).resolve().parent / "rubric.toml"
CHECK_IDS = (
    "p1.model_loaded", "p2.model_printed", "p2.diagram", "p3.hooks_every_layer", "p3.hook_site",
    "p3.captures_match", "p4.prompt_exact", "p5.projection_shape", "p5.unit_norm", "p5.projection_match",
    "p5.gif", "p5.explanation",
)


class RubricError(ValueError):
    pass


def load_rubric(path: Path | None = None) -> dict[str, dict]:
    """{check id: {"points": float, "enabled": bool}}; unknown ids and bad values are errors."""
    path = Path(path) if path else DEFAULT_RUBRIC
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RubricError(f"rubric file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RubricError(f"{path} is not valid TOML: {exc}") from None
    checks = data.get("checks", {})
    if not isinstance(checks, dict):
        raise RubricError(f"{path}: expected [checks.\"<id>\"] tables, found {type(checks).__name__}")
    rubric = {}
    for cid, entry in checks.items():
        if cid not in CHECK_IDS:
            raise RubricError(f"{path}: unknown check id {cid!r}; the check ids are {', '.join(CHECK_IDS)}")
        if not isinstance(entry, dict) or set(entry) - {"points", "enabled"}:
            raise RubricError(f"{path}: [checks.{cid!r}] may set only 'points' and 'enabled', found {entry!r}")
        points = entry.get("points")
        if points is not None and (not isinstance(points, (int, float)) or points < 0):
            raise RubricError(f"{path}: points of {cid} must be a number >= 0, found {points!r}")
        rubric[cid] = {k: v for k, v in entry.items()}
    return rubric
