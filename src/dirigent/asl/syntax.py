"""Syntax checks for the small languages embedded in a definition.

Its job: answer "is this string well formed?" for JSONPath paths, reference
paths, intrinsic function calls, JSONata ``{% %}`` expressions, RFC 3339
timestamps and Task ``Resource`` ARNs, returning an error message or ``None``.
The parser calls these while validating. Paths and intrinsic calls must pass
both this module's recognizers (which add the rules that only matter at
creation: reference paths, argument counts, literal types) and the evaluators'
own parsers (:mod:`dirigent.asl.jsonpath`, :mod:`dirigent.asl.intrinsics`), so a
definition that is accepted can also be run. Nothing is ever evaluated.

It must never evaluate an expression against data, and never raise for bad
input: a malformed string is an answer, not an exception.
"""

from __future__ import annotations

import re
from datetime import date

import jsonata

from dirigent.asl.intrinsics import IntrinsicSyntaxError, parse_intrinsic
from dirigent.asl.jsonpath import PathSyntaxError, compile_path

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"-?\d+")
_SLICE = re.compile(r"-?\d*:-?\d*(:-?\d*)?")
_UNION = re.compile(r"-?\d+(\s*,\s*-?\d+)+")
_QUOTED_UNION = re.compile(r"""('[^']*'|"[^"]*")(\s*,\s*('[^']*'|"[^"]*"))*""")
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))"
)

#: Intrinsic functions AWS documents, with (min, max) argument counts.
INTRINSIC_ARITY: dict[str, tuple[int, int | None]] = {
    "States.Format": (1, None),
    "States.StringToJson": (1, 1),
    "States.JsonToString": (1, 1),
    "States.Array": (0, None),
    "States.ArrayPartition": (2, 2),
    "States.ArrayContains": (2, 2),
    "States.ArrayRange": (3, 3),
    "States.ArrayGetItem": (2, 2),
    "States.ArrayLength": (1, 1),
    "States.ArrayUnique": (1, 1),
    "States.Base64Encode": (1, 1),
    "States.Base64Decode": (1, 1),
    "States.Hash": (2, 2),
    "States.JsonMerge": (3, 3),
    "States.MathRandom": (2, 3),
    "States.MathAdd": (2, 2),
    "States.StringSplit": (2, 2),
    "States.UUID": (0, 0),
}

# Literal arguments whose type AWS checks when the definition is created: a
# literal that can never be right is rejected then rather than at run time.
_NUMERIC_ARGS = {"States.MathAdd", "States.MathRandom", "States.ArrayRange"}
_STRING_ARGS = {
    "States.Base64Encode",
    "States.Base64Decode",
    "States.StringSplit",
    "States.StringToJson",
}


# --------------------------------------------------------------------------- paths


def path_error(
    text: str, *, reference: bool = False, context: bool = True, variables: bool = True
) -> str | None:
    """Why ``text`` is not a JSONPath (or a Reference Path when ``reference``), or ``None``.

    A path starts at ``$`` (the input), ``$$`` (the context object, when
    ``context``) or ``$name`` (a variable, when ``variables``). A Reference Path
    only names a single node: dot names, quoted names and array indexes, no
    wildcards, slices, filters or deep scans.
    """
    if text.startswith("$$"):
        if not context:
            return "the context object ($$) cannot be used here"
        i = 2
    elif text.startswith("$"):
        ident = _IDENT.match(text, 1)
        if ident:
            if not variables:
                return "a variable cannot be used here"
            i = ident.end()
        else:
            i = 1
    else:
        return "a path must start with '$'"
    problem = _segments_error(text, i, reference)
    if problem is None:
        # The evaluator's own compiler has the last word: a path it cannot
        # compile would fail every execution, so it is refused at creation.
        try:
            compile_path(text)
        except PathSyntaxError as exc:
            return exc.reason
    return problem


def _segments_error(text: str, i: int, reference: bool) -> str | None:
    n = len(text)
    while i < n:
        char = text[i]
        if char == ".":
            if text.startswith("..", i):
                if reference:
                    return "a reference path cannot use '..'"
                i += 2
                if i < n and text[i] == "[":
                    continue
            else:
                i += 1
            end = i
            while end < n and text[end] not in ".[":
                end += 1
            name = text[i:end]
            if not name or (name.strip() != name):
                return f"invalid name at position {i}"
            if reference and name == "*":
                return "a reference path cannot use '*'"
            i = end
        elif char == "[":
            end = _closing_bracket(text, i)
            if end < 0:
                return f"unclosed '[' at position {i}"
            problem = _subscript_error(text[i + 1 : end].strip(), reference)
            if problem:
                return problem
            i = end + 1
        else:
            return f"unexpected '{char}' at position {i}"
    return None


def _closing_bracket(text: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0:
                return i if char == "]" else -1
        i += 1
    return -1


def _subscript_error(inner: str, reference: bool) -> str | None:
    if _QUOTED_UNION.fullmatch(inner):
        if reference and "," in inner:
            return "a reference path cannot select several names"
        return None
    if re.fullmatch(r"\d+", inner):
        return None
    if reference:
        return f"a reference path cannot use '[{inner}]'"
    if inner == "*" or _INT.fullmatch(inner) or _SLICE.fullmatch(inner) or _UNION.fullmatch(inner):
        return None
    if inner.startswith(("?(", "(")) and inner.endswith(")"):
        return None
    return f"invalid subscript '[{inner}]'"


# --------------------------------------------------------------------------- intrinsics


def is_intrinsic_call(text: str) -> bool:
    """Whether ``text`` looks like an attempt at an intrinsic call (``States.X(...)``)."""
    return text.startswith("States.")


def intrinsic_error(text: str) -> str | None:
    """Why ``text`` is not a well-formed intrinsic function call, or ``None``."""
    parser = _IntrinsicParser(text)
    try:
        parser.call(0)
        parser.skip_space()
        if parser.i != len(text):
            return f"unexpected text at position {parser.i}"
    except _SyntaxProblem as exc:
        return str(exc)
    # This recognizer adds argument-count and literal-type checks; the
    # evaluator's parser must accept the call too, or it could never run.
    try:
        parse_intrinsic(text)
    except IntrinsicSyntaxError as exc:
        return exc.reason
    return None


class _SyntaxProblem(Exception):
    pass


class _IntrinsicParser:
    """A recursive-descent recognizer; nesting is bounded by ``_MAX_NESTING``."""

    _MAX_NESTING = 32

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\n\r":
            self.i += 1

    def call(self, depth: int) -> None:
        if depth > self._MAX_NESTING:
            raise _SyntaxProblem("intrinsic calls are nested too deeply")
        match = re.compile(r"States\.[A-Za-z0-9]+").match(self.text, self.i)
        if not match:
            raise _SyntaxProblem(f"expected an intrinsic function at position {self.i}")
        name = match.group()
        if name not in INTRINSIC_ARITY:
            raise _SyntaxProblem(f"unknown intrinsic function {name}")
        self.i = match.end()
        if self.i >= len(self.text) or self.text[self.i] != "(":
            raise _SyntaxProblem(f"expected '(' after {name}")
        self.i += 1
        kinds: list[str] = []
        self.skip_space()
        if self.i < len(self.text) and self.text[self.i] == ")":
            self.i += 1
        else:
            while True:
                self.skip_space()
                kinds.append(self.argument(depth))
                self.skip_space()
                if self.i >= len(self.text):
                    raise _SyntaxProblem(f"missing ')' for {name}")
                if self.text[self.i] == ",":
                    self.i += 1
                    continue
                if self.text[self.i] == ")":
                    self.i += 1
                    break
                raise _SyntaxProblem(f"unexpected '{self.text[self.i]}' at position {self.i}")
        _check_arguments(name, kinds)

    def argument(self, depth: int) -> str:
        text, i = self.text, self.i
        if i >= len(text):
            raise _SyntaxProblem("missing argument")
        char = text[i]
        if char == "'":
            self.string()
            return "string"
        if char == "$":
            end = i
            while end < len(text) and text[end] not in ",)":
                if text[end] == "[":
                    close = _closing_bracket(text, end)
                    if close < 0:
                        raise _SyntaxProblem(f"unclosed '[' at position {end}")
                    end = close
                end += 1
            path = text[i:end].rstrip()
            problem = path_error(path)
            if problem:
                raise _SyntaxProblem(f"invalid path argument {path!r}: {problem}")
            self.i = end
            return "path"
        if text.startswith("States.", i):
            self.call(depth + 1)
            return "call"
        number = _NUMBER.match(text, i)
        if number:
            self.i = number.end()
            return "number"
        for word in ("true", "false", "null"):
            if text.startswith(word, i):
                self.i = i + len(word)
                return word if word == "null" else "boolean"
        raise _SyntaxProblem(f"invalid argument at position {i}")

    def string(self) -> None:
        # Inside an intrinsic string only \' \{ \} and \\ are escapes; AWS
        # rejects any other backslash sequence (\" included) at creation.
        text = self.text
        i = self.i + 1
        while i < len(text):
            char = text[i]
            if char == "\\":
                if i + 1 >= len(text) or text[i + 1] not in "'{}\\":
                    raise _SyntaxProblem(f"invalid escape sequence at position {i}")
                i += 2
                continue
            if char == "'":
                self.i = i + 1
                return
            i += 1
        raise _SyntaxProblem("unterminated string literal")


def _check_arguments(name: str, kinds: list[str]) -> None:
    low, high = INTRINSIC_ARITY[name]
    if len(kinds) < low or (high is not None and len(kinds) > high):
        raise _SyntaxProblem(f"{name} takes {_arity_text(low, high)}, got {len(kinds)}")
    literal = {"string", "number", "boolean", "null"}
    if name in _NUMERIC_ARGS and any(k in literal and k != "number" for k in kinds):
        raise _SyntaxProblem(f"{name} arguments must be numbers, paths or intrinsic calls")
    if name in _STRING_ARGS and any(k in literal and k != "string" for k in kinds):
        raise _SyntaxProblem(f"{name} arguments must be strings, paths or intrinsic calls")
    if name == "States.Format" and kinds[0] in literal and kinds[0] != "string":
        raise _SyntaxProblem("the first argument of States.Format must be a string")


def _arity_text(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


# --------------------------------------------------------------------------- JSONata


def is_jsonata_expression(value: object) -> bool:
    """Whether ``value`` is a JSONata expression string (``{% ... %}``)."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def jsonata_error(value: str) -> str | None:
    """Why a ``{% ... %}`` string is not a JSONata expression, or ``None``.

    A string that starts with ``{%`` but does not end with ``%}`` is refused
    too: it is almost always a typo, and AWS would treat it as a literal.
    """
    if not value.startswith("{%"):
        return None
    if not value.endswith("%}") or len(value) < 4:
        return "a JSONata expression must be enclosed in '{%' and '%}'"
    body = value[2:-2]
    if not body.strip():
        return "the JSONata expression is empty"
    try:
        jsonata.Jsonata(body)
    except Exception as exc:  # the library raises its own JException, untyped here
        return f"invalid JSONata expression: {exc}"
    return None


# --------------------------------------------------------------------------- timestamps


def timestamp_error(text: str) -> str | None:
    """``None`` when ``text`` is an RFC 3339 date-time (with a zone), else AWS's message."""
    match = _RFC3339.fullmatch(text)
    if match:
        year, month, day, hour, minute, second = (int(match.group(k)) for k in range(1, 7))
        try:
            date(year, month, day)
        except ValueError:
            match = None
        else:
            zone_ok = match.group(9) is None or (
                int(match.group(9)) < 24 and int(match.group(10)) < 60
            )
            if hour > 23 or minute > 59 or second > 60 or not zone_ok:
                match = None
    return None if match else "String does not match RFC3339 timestamp"
