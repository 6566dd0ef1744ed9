"""The rubric: per check id, its points, whether it is enabled, and how much of its feedback a student sees.

The assignment pack declares it (assignment.toml's [checks."<id>"] and [late]: grader/spec/rubric.py); a
rubric file (`grade --rubric my_rubric.toml`, the same two tables) overrides it for one run, check by check
and key by key: what the file leaves out keeps the pack's value.

    [checks."p3.hook_site"]
    points = 10
    enabled = true
    self_check = "brief"   # what the student self-check (grade-check) shows
    released = "full"      # what the feedback released after the due date shows

Visibility is "full" (what is wrong and how to fix it) or "brief" (what is wrong, not how to fix it:
the parts of a message a check marks with `hint(...)` are left out). Instructors, TAs and
results.json always get the full text.

The [late] table is read by grader/judge/rubric/late.py (`load_late_policy`); both go through
`read_rubric_file`, so a missing or malformed file is a RubricError wherever it is read first.
"""

from __future__ import annotations

import math
from pathlib import Path

from grader.errors import PackError

CHECK_IDS = (
    "p1.model_loaded", "p2.model_printed", "p2.diagram", "p3.hooks_every_layer", "p3.hook_site",
    "p3.captures_match", "p4.prompt_exact", "p5.projection_shape", "p5.unit_norm", "p5.projection_match",
    "p5.gif", "p5.explanation",
)

VISIBILITIES = ("full", "brief")
AUDIENCES = ("self_check", "released")  # the student self-check; the feedback released after the due date
# Brief before the due date where the how-to-fix part is the answer: which hook reads a layer's input
# (p3.hook_site), which site/hook the captures should come from (p3.captures_match), how to compute the
# PCA (p5.projection_match), and what the Part 2 diagram shows (p2.diagram: the layer's wiring). Full
# everywhere else, and for everything once released.
BRIEF_IN_SELF_CHECK = ("p2.diagram", "p3.hook_site", "p3.captures_match", "p5.projection_match")
DEFAULT_VISIBILITY = {cid: {"self_check": "brief" if cid in BRIEF_IN_SELF_CHECK else "full", "released": "full"}
                      for cid in CHECK_IDS}
ENTRY_KEYS = ("points", "enabled", *AUDIENCES)
PACK_ONLY_KEYS = ("title", "carry_forward")  # a pack's check entries also say these (grader/spec/rubric.py)
TABLES = ("checks", "late")  # the rubric file's tables: per-check entries; the late policy (report/totals.py)


class RubricError(PackError):
    pass


def visibility(rubric: dict, check_id: str, audience: str) -> str:
    """'full' or 'brief': how much of check_id's feedback the audience ('self_check' or 'released') sees."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, found {audience!r}")
    entry = (rubric or {}).get(check_id, {})
    default = DEFAULT_VISIBILITY.get(check_id, {}).get(audience, "full")
    return entry.get(audience, default)


def pack_rubric_tables(assignment=None) -> tuple[str, dict]:
    """(where, {"checks": ..., "late": ...}) as the assignment pack declares them."""
    from grader.spec.pack import load_pack
    from grader.spec.rubric import read_toml

    pack = load_pack(assignment)
    data = read_toml(pack.folder / "assignment.toml", "assignment pack file")
    return str(pack.folder / "assignment.toml"), {k: data[k] for k in TABLES if k in data}


def read_rubric_file(path: Path) -> dict:
    """The parsed rubric file; RubricError when it is missing, unreadable, not TOML, or has a table other
    than [checks] and [late]."""
    from grader.spec.rubric import read_toml

    path = Path(path)
    data = read_toml(path, "rubric file", RubricError, expected="a rubric.toml file")
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise RubricError(f"{path}: unknown table or key {', '.join(map(repr, unknown))}; a rubric file has "
                          "[checks.\"<id>\"] tables and a [late] table only")
    return data


def load_rubric(path: Path | None = None, assignment=None) -> dict[str, dict]:
    """{check id: {"points": float, "enabled": bool, "self_check": str, "released": str}}: the pack's, with
    the rubric file's settings on top (a key left out keeps the pack's value); unknown ids and bad values
    are errors."""
    from grader.spec.pack import load_pack

    where, data = pack_rubric_tables(assignment)
    rubric = _entries(where, data)
    words = load_pack(assignment).words()
    for cid, entry in data.get("checks", {}).items():  # the pack's titles, with {model_name}, {n_layers}... filled in
        if isinstance(entry.get("title"), str):
            rubric[cid]["title"] = entry["title"].format(**words)
    if path:
        for cid, entry in _entries(Path(path), read_rubric_file(Path(path))).items():
            rubric[cid] = {**rubric.get(cid, {}), **entry}
    return rubric


def _entries(path, data: dict) -> dict[str, dict]:
    checks = data.get("checks", {})
    if not isinstance(checks, dict):
        raise RubricError(f"{path}: expected [checks.\"<id>\"] tables, found {type(checks).__name__}")
    rubric = {}
    for cid, entry in checks.items():
        if cid not in CHECK_IDS:
            raise RubricError(f"{path}: unknown check id {cid!r}; the check ids are {', '.join(CHECK_IDS)}")
        if not isinstance(entry, dict) or set(entry) - set(ENTRY_KEYS) - set(PACK_ONLY_KEYS if str(path).endswith(
                "assignment.toml") else ()):
            raise RubricError(f"{path}: [checks.{cid!r}] may set only 'points' and 'enabled' (scoring) and "
                              f"'self_check' and 'released' (how much feedback a student sees: \"full\" or "
                              f"\"brief\"), found {entry!r}")
        points = entry.get("points")
        if points is not None and (not isinstance(points, (int, float)) or isinstance(points, bool)
                                   or not math.isfinite(points) or points < 0):
            raise RubricError(f"{path}: points of {cid} must be a number >= 0, found {points!r}")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RubricError(f"{path}: enabled of {cid} must be true or false, found {enabled!r}")
        for audience in AUDIENCES:
            value = entry.get(audience)
            if value is not None and value not in VISIBILITIES:
                what = "the student self-check" if audience == "self_check" else "the feedback released after the due date"
                raise RubricError(f"{path}: {audience} of {cid} (what {what} shows) must be \"full\" (what is wrong "
                                  f"and how to fix it) or \"brief\" (what is wrong only), found {value!r}")
        rubric[cid] = {k: v for k, v in entry.items() if k in ENTRY_KEYS}
    return rubric
