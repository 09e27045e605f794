"""Intrinsic functions (``States.Format(...)`` and the rest) for JSONPath states.

An expression is parsed once into a small tree (calls, literals, paths) and
cached by its text; evaluating it reads paths from a :class:`Scope`, and takes
randomness only from ``scope.entropy``. The semantics follow what AWS recorded:
``States.MathAdd`` rounds each argument as Java's ``Math.round`` does,
``States.StringSplit`` splits on any of the delimiter's characters and drops
empty pieces, ``States.Format`` prints objects as Java maps (``{a=1, b=[]}``),
``States.StringToJson`` of a blank string is ``null``.

Failures: a malformed expression raises :class:`IntrinsicSyntaxError` from
:func:`parse_intrinsic` (the parser reports it as a definition error); at run
time a bad argument raises ``StatesFailure(States.IntrinsicFailure, ...)`` and a
path argument that does not resolve raises
:class:`~dirigent.asl.jsonpath.PathNotFound`, so the caller can name the field.

This module must never do I/O, read a clock or use a random generator of its own.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from dirigent.asl.failure import INTRINSIC_FAILURE, StatesFailure
from dirigent.asl.jsonpath import CompiledPath, PathSyntaxError, compile_path
from dirigent.asl.jsontext import dumps
from dirigent.asl.model import Json
from dirigent.asl.scope import Scope

__all__ = [
    "Call",
    "IntrinsicSyntaxError",
    "evaluate_call",
    "evaluate_intrinsic",
    "is_intrinsic",
    "parse_intrinsic",
]

#: AWS allows at most this many intrinsic functions nested in one field
MAX_NESTING: Final = 10
#: the longest string States.Base64Encode/Decode and States.Hash accept
MAX_STRING_LENGTH: Final = 10_000
#: the most items States.ArrayRange may produce
MAX_RANGE_ITEMS: Final = 1_000


class IntrinsicSyntaxError(ValueError):
    """Text that is not a well-formed intrinsic function call."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"Invalid intrinsic function '{expression}': {reason}")
        self.expression = expression
        self.reason = reason


# --------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Literal:
    value: Json
    #: string literals only: the text split at each unescaped ``{}`` (States.Format)
    pieces: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PathArgument:
    path: CompiledPath


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: tuple[Literal | PathArgument | Call, ...]


def is_intrinsic(text: str) -> bool:
    """Whether a ``.$`` value is an intrinsic call rather than a path."""
    return text.startswith("States.") and "(" in text


def evaluate_intrinsic(expression: str, scope: Scope) -> Json:
    """Evaluate ``expression`` (e.g. ``States.Format('{}', $.a)``) against ``scope``."""
    try:
        call = parse_intrinsic(expression)
    except IntrinsicSyntaxError as exc:
        raise StatesFailure(INTRINSIC_FAILURE, str(exc)) from None
    return evaluate_call(call, scope)


def evaluate_call(call: Call, scope: Scope) -> Json:
    """Evaluate a call parsed by :func:`parse_intrinsic` (compiled templates hold these)."""
    return _evaluate(call, scope)


def _evaluate(node: Literal | PathArgument | Call, scope: Scope) -> Json:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathArgument):
        return node.path.evaluate(scope)
    values = [_evaluate(argument, scope) for argument in node.arguments]
    function, arity = _FUNCTIONS[node.name]
    low, high = arity
    if not low <= len(values) <= high:
        expected = str(low) if low == high else f"{low} to {high}" if high < 99 else f"{low}+"
        raise _failure(node.name, f"expected {expected} arguments but got {len(values)}")
    return function(node, values, scope)


# --------------------------------------------------------------------------- parsing

_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORDS: Final[dict[str, Json]] = {"true": True, "false": False, "null": None}


@functools.lru_cache(maxsize=1024)
def parse_intrinsic(expression: str) -> Call:
    """Parse once; the tree is immutable and safe to share."""
    parser = _Parser(expression)
    call = parser.call(depth=1)
    if parser.blanks() != len(expression):
        raise IntrinsicSyntaxError(expression, f"unexpected text at position {parser.position}")
    return call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def blanks(self) -> int:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1
        return self.position

    def fail(self, reason: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(self.text, f"{reason} at position {self.position}")

    def call(self, depth: int) -> Call:
        if depth > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} nested intrinsic functions")
        start = self.blanks()
        opening = self.text.find("(", start)
        name = self.text[start:opening].strip() if opening > 0 else ""
        if name not in _FUNCTIONS:
            raise self.fail(f"'{name or self.text[start:]}' is not an intrinsic function")
        self.position = opening + 1
        arguments: list[Literal | PathArgument | Call] = []
        if self.text.startswith(")", self.blanks()):
            self.position += 1
            return Call(name, ())
        while True:
            arguments.append(self.argument(depth))
            self.blanks()
            char = self.text[self.position : self.position + 1]
            self.position += 1
            if char == ")":
                return Call(name, tuple(arguments))
            if char != ",":
                self.position -= 1
                raise self.fail("expected ',' or ')'")

    def argument(self, depth: int) -> Literal | PathArgument | Call:
        start = self.blanks()
        text = self.text
        if text.startswith("'", start):
            return self.string()
        if text.startswith("$", start):
            return PathArgument(self.path())
        if text.startswith("States.", start):
            return self.call(depth + 1)
        match = _NUMBER.match(text, start)
        if match is not None:
            self.position = match.end()
            word = match.group()
            return Literal(float(word) if any(c in word for c in ".eE") else int(word))
        for word, value in _WORDS.items():
            if text.startswith(word, start):
                self.position = start + len(word)
                return Literal(value)
        raise self.fail("expected a string, number, path or intrinsic function")

    def string(self) -> Literal:
        text = self.text
        self.position += 1
        pieces: list[str] = []
        chars: list[str] = []
        while self.position < len(text):
            char = text[self.position]
            if char == "\\":
                escaped = text[self.position + 1 : self.position + 2]
                if escaped not in ("'", "{", "}", "\\"):
                    raise self.fail("an open escape backslash")
                chars.append(escaped)
                self.position += 2
            elif char == "'":
                self.position += 1
                pieces.append("".join(chars))
                return Literal("{}".join(pieces), tuple(pieces))
            elif text.startswith("{}", self.position):
                # An unescaped {} is a States.Format placeholder; the literal's
                # value keeps it, the pieces record where it was.
                pieces.append("".join(chars))
                chars = []
                self.position += 2
            else:
                chars.append(char)
                self.position += 1
        raise self.fail("a string literal is not closed")

    def path(self) -> CompiledPath:
        # A path runs to the next ',' or ')' outside brackets and quotes, so
        # $.a['x,y'] and $.a[?(@.b > 1)] stay whole.
        text, start = self.text, self.position
        depth, quote = 0, ""
        while self.position < len(text):
            char = text[self.position]
            if quote:
                if char == "\\":
                    self.position += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif char in ",)" and depth == 0:
                break
            self.position += 1
        try:
            return compile_path(text[start : self.position].rstrip())
        except PathSyntaxError as exc:
            raise self.fail(exc.reason) from None


# --------------------------------------------------------------------------- argument checks


def _failure(name: str, reason: str) -> StatesFailure:
    return StatesFailure(INTRINSIC_FAILURE, f"Invalid arguments in {name}: {reason}")


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _array(name: str, value: Json, position: int) -> list[Json]:
    if not isinstance(value, list):
        raise _failure(name, f"argument {position} must be an array, got {dumps(value)}")
    return value


def _string(name: str, value: Json, position: int) -> str:
    if not isinstance(value, str):
        raise _failure(name, f"argument {position} must be a string, got {dumps(value)}")
    return value


def _integer(name: str, value: Json, position: int) -> int:
    if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
        raise _failure(name, f"argument {position} must be an integer, got {dumps(value)}")
    return int(value)


def _rounded(name: str, value: Json, position: int) -> int:
    """A number rounded half up, as Java's ``Math.round`` (so -1.5 becomes -1)."""
    if not _is_number(value):
        raise _failure(name, f"argument {position} must be a number, got {dumps(value)}")
    return math.floor(value + 0.5) if isinstance(value, float) else int(value)


def _bounded(name: str, text: str) -> str:
    if len(text) > MAX_STRING_LENGTH:
        raise _failure(name, f"the input exceeds {MAX_STRING_LENGTH} characters")
    return text


def _same_json(value: Json) -> str:
    """A key equal for equal JSON values (key order ignored), as Jackson's equals."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- the functions
#
# Each takes (call, argument values, scope); the call gives Format its pieces.

_Function = Callable[[Call, list[Json], Scope], Json]


def _format(call: Call, args: list[Json], _scope: Scope) -> Json:
    template = call.arguments[0]
    if isinstance(template, Literal) and template.pieces is not None:
        pieces: Sequence[str] = template.pieces
    else:
        pieces = _string(call.name, args[0], 1).split("{}")
    values = args[1:]
    if len(pieces) - 1 != len(values):
        reason = f"the format string has {len(pieces) - 1} placeholders for {len(values)} values"
        raise _failure(call.name, reason)
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out.append(_java_text(value))
        out.append(piece)
    return "".join(out)


def _java_text(value: Json) -> str:
    """How AWS prints a value into States.Format: Java's toString of the value."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return dumps(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    return "{" + ", ".join(f"{k}={_java_text(v)}" for k, v in value.items()) + "}"


def _java_double(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)  # Python and Java agree on the shortest digits here
    mantissa, _, exponent = f"{value:.16e}".partition("e")
    digits = repr(float(mantissa)).rstrip("0")
    return f"{digits}0E{int(exponent)}" if digits.endswith(".") else f"{digits}E{int(exponent)}"


def _string_to_json(call: Call, args: list[Json], _scope: Scope) -> Json:
    text = _string(call.name, args[0], 1)
    if not text.strip():
        return None

    def reject(constant: str) -> Json:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=reject)
    except ValueError:
        raise _failure(call.name, f"the string {dumps(text)} is not valid JSON") from None


def _array_partition(call: Call, args: list[Json], _scope: Scope) -> Json:
    items = _array(call.name, args[0], 1)
    size = _integer(call.name, args[1], 2)
    if size <= 0:
        raise _failure(call.name, f"the chunk size must be positive, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]


def _array_contains(call: Call, args: list[Json], _scope: Scope) -> Json:
    wanted = _same_json(args[1])
    return any(_same_json(item) == wanted for item in _array(call.name, args[0], 1))


def _array_range(call: Call, args: list[Json], _scope: Scope) -> Json:
    start, end, step = (_integer(call.name, value, i + 1) for i, value in enumerate(args))
    if step == 0:
        raise _failure(call.name, "the step must not be 0")
    items = range(start, end + (1 if step > 0 else -1), step)
    if len(items) > MAX_RANGE_ITEMS:
        raise _failure(call.name, f"the range has more than {MAX_RANGE_ITEMS} items")
    return list(items)


def _array_get_item(call: Call, args: list[Json], _scope: Scope) -> Json:
    items = _array(call.name, args[0], 1)
    index = _integer(call.name, args[1], 2)
    if not 0 <= index < len(items):
        raise _failure(call.name, f"the index {index} is out of bounds")
    return items[index]


def _array_unique(call: Call, args: list[Json], _scope: Scope) -> Json:
    seen: set[str] = set()
    unique = []
    for item in _array(call.name, args[0], 1):
        key = _same_json(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _base64_encode(call: Call, args: list[Json], _scope: Scope) -> Json:
    text = _bounded(call.name, _string(call.name, args[0], 1))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _base64_decode(call: Call, args: list[Json], _scope: Scope) -> Json:
    text = _bounded(call.name, _string(call.name, args[0], 1))
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        raise _failure(call.name, f"{dumps(text)} is not Base64-encoded UTF-8 text") from None


_HASHES: Final = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


def _hash(call: Call, args: list[Json], _scope: Scope) -> Json:
    text = _bounded(call.name, _string(call.name, args[0], 1))
    algorithm = _HASHES.get(_string(call.name, args[1], 2))
    if algorithm is None:
        names = ", ".join(_HASHES)
        raise _failure(call.name, f"the algorithm must be one of {names}, got {dumps(args[1])}")
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def _json_merge(call: Call, args: list[Json], _scope: Scope) -> Json:
    left, right, deep = args
    for position, value in ((1, left), (2, right)):
        if not isinstance(value, dict):
            raise _failure(call.name, f"argument {position} must be an object, got {dumps(value)}")
    if deep is not False:
        raise _failure(
            call.name, "only the shallow merge is supported: the third argument must be false"
        )
    return {**left, **right}


def _math_random(call: Call, args: list[Json], scope: Scope) -> Json:
    start = _rounded(call.name, args[0], 1)
    end = _rounded(call.name, args[1], 2)
    seed = _rounded(call.name, args[2], 3) if len(args) == 3 else None
    if start >= end:
        raise _failure(call.name, f"the start {start} must be less than the end {end}")
    return scope.entropy.random_int(start, end, seed)


def _string_split(call: Call, args: list[Json], _scope: Scope) -> Json:
    text = _string(call.name, args[0], 1)
    delimiters = _string(call.name, args[1], 2)
    if not delimiters:
        return [text] if text else []
    # Every delimiter character splits; empty pieces vanish (Java's StringTokenizer).
    pattern = "[" + re.escape(delimiters) + "]"
    return [piece for piece in re.split(pattern, text) if piece]


_FUNCTIONS: Final[dict[str, tuple[_Function, tuple[int, int]]]] = {
    "States.Format": (_format, (1, 99)),
    "States.StringToJson": (_string_to_json, (1, 1)),
    "States.JsonToString": (lambda _c, args, _s: dumps(args[0]), (1, 1)),
    "States.Array": (lambda _c, args, _s: list(args), (0, 99)),
    "States.ArrayPartition": (_array_partition, (2, 2)),
    "States.ArrayContains": (_array_contains, (2, 2)),
    "States.ArrayRange": (_array_range, (3, 3)),
    "States.ArrayGetItem": (_array_get_item, (2, 2)),
    "States.ArrayLength": (lambda c, args, _s: len(_array(c.name, args[0], 1)), (1, 1)),
    "States.ArrayUnique": (_array_unique, (1, 1)),
    "States.Base64Encode": (_base64_encode, (1, 1)),
    "States.Base64Decode": (_base64_decode, (1, 1)),
    "States.Hash": (_hash, (2, 2)),
    "States.JsonMerge": (_json_merge, (3, 3)),
    "States.MathRandom": (_math_random, (2, 3)),
    "States.MathAdd": (
        lambda c, args, _s: _rounded(c.name, args[0], 1) + _rounded(c.name, args[1], 2),
        (2, 2),
    ),
    "States.StringSplit": (_string_split, (2, 2)),
    "States.UUID": (lambda _c, _args, scope: scope.entropy.uuid4(), (0, 0)),
}
