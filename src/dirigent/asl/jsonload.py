"""Strict loading of definition text into JSON values.

Its job: turn the text a user sent (``str`` or UTF-8 ``bytes``) into plain JSON
values, refusing what Python's :mod:`json` would quietly accept but AWS does
not: duplicate object keys (the last one would silently win), ``NaN`` and
``Infinity``, bytes that are not UTF-8, and nesting so deep that a recursive
reader would exhaust the interpreter's stack. Every refusal is a
:class:`~dirigent.errors.DefinitionError` whose diagnostics carry a JSON pointer
(or, for syntax errors, the line and column).

It must never read files, never evaluate anything, and never raise anything but
``DefinitionError`` for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dirigent.asl.model import Json
from dirigent.errors import DefinitionError, Diagnostic

#: Deeper than any real state machine (AWS caps a definition at 1 MB, and nested
#: Parallel/Map states rarely go past a handful of levels), and far below the
#: depth at which the C JSON decoder or our own walkers would hit RecursionError.
MAX_DEPTH = 512

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def pointer_escape(token: str) -> str:
    """One RFC 6901 reference token: ``~`` and ``/`` escaped."""
    return token.replace("~", "~0").replace("/", "~1")


def load_json_text(source: str | bytes) -> Json:
    """Parse definition text strictly; raise ``DefinitionError`` on anything AWS would refuse."""
    text = _decode(source)
    _check_text_depth(text)
    duplicates: list[tuple[dict[str, Any], str]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                # The pointer is not known here (the hook sees one object at a
                # time), so remember the object and find its place afterwards.
                duplicates.append((obj, key))
            obj[key] = value
        return obj

    def reject_constant(name: str) -> Any:
        raise _NonFinite(name)

    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant)
    except _NonFinite as exc:
        raise DefinitionError([Diagnostic("", f"{exc.name} is not a valid JSON value")]) from None
    except json.JSONDecodeError as exc:
        raise DefinitionError([Diagnostic("", _syntax_message(exc))]) from exc
    if duplicates:
        raise DefinitionError(_duplicate_diagnostics(value, duplicates))
    return value


def check_depth(value: Json) -> None:
    """Refuse an already-parsed value nested deeper than :data:`MAX_DEPTH`.

    Iterative on purpose: a recursive walk would itself be the stack overflow
    this check exists to prevent.
    """
    stack: list[tuple[Json, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise DefinitionError([Diagnostic("", _too_deep())])
        stack.extend((child, depth + 1) for child in children)


class _NonFinite(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _decode(source: str | bytes) -> str:
    if isinstance(source, str):
        return source
    try:
        return bytes(source).decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"Invalid JSON: the text is not valid UTF-8 (byte {exc.start})"
        raise DefinitionError([Diagnostic("", message)]) from exc


def _check_text_depth(text: str) -> None:
    # Strings are removed first so brackets inside them do not count; what is
    # left is scanned by a regex, never by recursion.
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DefinitionError([Diagnostic("", _too_deep())])
        else:
            depth -= 1


def _syntax_message(exc: json.JSONDecodeError) -> str:
    """A syntax error in the words AWS uses (its parser is Jackson), with line and column."""
    token = _TOKEN.match(exc.doc, exc.pos)
    if exc.msg == "Expecting value" and token:
        # Jackson reports the column just past the unrecognized word.
        column = exc.colno + len(token.group())
        return (
            f"Unrecognized token '{token.group()}': was expecting (JSON String, Number, Array, "
            f"Object or token 'null', 'true' or 'false')\n at line {exc.lineno}, column {column}"
        )
    return f"Invalid JSON: {exc.msg}\n at line {exc.lineno}, column {exc.colno}"


def _too_deep() -> str:
    return f"Invalid JSON: nested deeper than {MAX_DEPTH} levels"


def _duplicate_diagnostics(
    root: Json, duplicates: list[tuple[dict[str, Any], str]]
) -> list[Diagnostic]:
    wanted = {id(obj): [key for o, key in duplicates if o is obj] for obj, _ in duplicates}
    found: list[Diagnostic] = []
    stack: list[tuple[Json, str]] = [(root, "")]
    while stack:
        node, pointer = stack.pop()
        if isinstance(node, dict):
            found.extend(
                Diagnostic(f"{pointer}/{pointer_escape(key)}", f"Duplicate field '{key}'")
                for key in wanted.pop(id(node), [])
            )
            stack.extend((v, f"{pointer}/{pointer_escape(k)}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{pointer}/{i}") for i, v in enumerate(node))
    found.sort(key=lambda d: d.pointer)
    return found
