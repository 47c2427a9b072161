"""Validation errors in one line: file, line, section, the allowed keys and the closest one."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from medzsad.config.executor import EXECUTOR_KEYS

__all__ = ["format_error"]


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _section_model(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for the list of allowed keys)."""
    model: type[BaseModel] = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def _public_fields(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in ("base_dir", "source_file")]


def format_error(err: Any, source: str, lines: dict[tuple[Any, ...], int], root: type[BaseModel]) -> str:
    """One line for a pydantic error: file and line, section, key, the allowed keys, the close one.

    Args:
        err: One entry of ``ValidationError.errors()``.
        source: The file name (or ``-i PATH``) shown first.
        lines: Key path -> 1-based line in the file (empty for in-memory configs).
        root: The model validated (its sections give the allowed keys).
    """
    loc = tuple(err["loc"])
    line = _line_of(loc, lines)
    where = f"{source}:{line}" if line is not None else source
    section = ".".join(str(p) for p in loc[:-1]) or "the top level"
    if (
        err["type"] == "extra_forbidden"
        and len(loc) == 3
        and loc[0] == "executor"
        and loc[1] in EXECUTOR_KEYS
    ):
        return f"{where}: {_executor_key_error(str(loc[1]), str(loc[2]))}"
    if err["type"] == "extra_forbidden":
        model = _section_model(loc, root)
        fields = _public_fields(model) if model else []
        allowed = ", ".join(fields) if fields else "see docs/cohort.md"
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key {loc[-1]!r} in {section} (allowed: {allowed}){hint}"
    if err["type"] == "missing":
        return f"{where}: missing key {loc[-1]!r} in {section} (see docs/cohort.md)"
    key = ".".join(str(p) for p in loc) or "cohort"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = ""
    if not isinstance(value, dict | list) and value is not None and repr(value) not in msg:
        shown = f" (found {value!r})"
    return f"{where}: {key}: {msg}{shown}"


def _executor_key_error(kind: str, key: str) -> str:
    """A key the executor kind does not take: which kind it belongs to, and what this kind takes."""
    allowed = [k for k in EXECUTOR_KEYS[kind] if k != "kind"]
    other = next((k for k, keys in EXECUTOR_KEYS.items() if k != kind and key in keys), None)
    if other is not None:
        why = f"{key!r} is a key of the {other} executor, not of kind {kind}"
    else:
        close = difflib.get_close_matches(key, allowed, n=1)
        why = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return f"executor (kind {kind}): {why}; a {kind} executor takes {', '.join(allowed)}"
