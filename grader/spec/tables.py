"""TOML tables read into dataclasses, strictly: the one validator behind assignment.toml and rubric overrides.

    read_table(Limits, data.get("limits", {}), "assignment.toml [limits]")

Every key must be a field of the dataclass and have its field's type (an int where a float is asked for
is fine; a bool is never a number); a field's `metadata["check"]` (a function value -> error text or
None) adds a range check. A problem raises PackError naming the file, the table, the key, what was
expected and what was found, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable

from grader.errors import PackError


def check(fn: Callable[[object], str | None], default=dataclasses.MISSING, **kwargs):
    """A dataclass field with a range check: `points: float = check(at_least(0), 0.0)`."""
    if default is dataclasses.MISSING and "default_factory" not in kwargs:
        return dataclasses.field(metadata={"check": fn}, **kwargs)
    return dataclasses.field(default=default, metadata={"check": fn}, **kwargs)


def at_least(low: float) -> Callable[[object], str | None]:
    return lambda v: None if v >= low else f"a number >= {low:g}"


def above(low: float) -> Callable[[object], str | None]:
    return lambda v: None if v > low else f"a number > {low:g}"


def between(low: float, high: float) -> Callable[[object], str | None]:
    return lambda v: None if low <= v <= high else f"a number between {low:g} and {high:g}"


def one_of(*choices: str) -> Callable[[object], str | None]:
    return lambda v: None if v in choices else " or ".join(repr(c) for c in choices)


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin is dict:
        return f"a table of {_describe(typing.get_args(tp)[1])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _fits(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value) if args else True
    if origin is dict:
        key_t, value_t = typing.get_args(tp)
        return isinstance(value, dict) and all(_fits(k, key_t) and _fits(v, value_t) for k, v in value.items())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _convert(value, tp):
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if float in args and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    if origin is tuple:
        return tuple(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def read_table(cls, table, where: str, required: tuple[str, ...] = ()):
    """An instance of the dataclass `cls` from a TOML table; PackError naming `where` and the key otherwise."""
    if not isinstance(table, dict):
        raise PackError(f"{where}: expected a table of settings, found {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in table if k not in fields]
    if unknown:
        raise PackError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(fields)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise PackError(f"{where}: {missing[0]!r} is required ({_describe(hints[missing[0]])})")
    values = {}
    for key, value in table.items():
        tp = hints[key]
        if not _fits(value, tp):
            raise PackError(f"{where}: {key} must be {_describe(tp)}, found {value!r}")
        problem = fields[key].metadata.get("check", lambda v: None)(value) if value is not None else None
        if problem:
            raise PackError(f"{where}: {key} must be {problem}, found {value!r}")
        values[key] = _convert(value, tp)
    return cls(**values)


def only_tables(data: dict, allowed: tuple[str, ...], where: str) -> None:
    """Refuse top-level keys or sections a file may not hold (a typo such as [chekcs] is an error)."""
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise PackError(f"{where}: unknown section [{unknown[0]}]; the sections are "
                        + ", ".join(f"[{a}]" for a in allowed))


def toml_blocks(text: str) -> list[tuple[str | None, str]]:
    """A TOML file's text as (table name, text) blocks, comments kept: the preamble (None), then one block
    per table header line. For writing a pack file with one table replaced (`grade new-assignment`, the
    student kit), never for reading one."""
    import re

    out: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if m:
            out.append((m.group(1), []))
        out[-1][1].append(line)
    return [(name, "".join(lines)) for name, lines in out]


def replace_table(text: str, table: str, block: str) -> str:
    """The TOML text with the block of `table` (its header line and what follows up to the next table)
    replaced by `block`; ValueError when the text has no such table."""
    blocks = toml_blocks(text)
    if table not in [name for name, _ in blocks]:
        raise ValueError(f"no [{table}] table to replace")
    return "".join(block if name == table else b for name, b in blocks)
