"""AWS's JSONPath: compile a path once, evaluate it, and apply the path fields.

Step Functions evaluates paths with Jayway JsonPath, so this module follows
Jayway's semantics and words failures as Jayway does (AWS quotes those words in
causes such as ``Invalid path '$.x' : No results for path: $['x']``):

* a *definite* path (only names and indices) yields one value and raises
  :class:`PathNotFound` when it does not resolve;
* an *indefinite* path (wildcard, slice, index union, filter, deep scan) yields
  the list of matches, possibly empty, and never raises;
* the root picks the document: ``$`` the state input, ``$$`` the context object,
  ``$name`` the workflow variable ``name``.

The last section applies ``InputPath``/``OutputPath`` and ``ResultPath`` and
builds AWS's "could not be found" cause for the workflow core.

The module is pure (no I/O, clock or randomness) and never mutates a document it
is given: ResultPath copies only the containers on the written path and shares
everything else, so JSON values in the core must be treated as immutable.
Compiled paths are immutable and cached by their text.

One module, not three: filters and the path fields are small and share the
step machinery; splitting them would scatter one language over several files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from dirigent.asl.failure import RUNTIME, StatesFailure
from dirigent.asl.jsontext import dumps
from dirigent.asl.model import MISSING, Json
from dirigent.asl.scope import Scope

__all__ = [
    "CompiledPath",
    "PathNotFound",
    "PathSyntaxError",
    "apply_io_path",
    "apply_result_path",
    "compile_path",
    "evaluate",
    "not_found_message",
]

#: what a step finds where there is nothing (``None`` is JSON ``null``)
_ABSENT: Final[Any] = object()


class PathSyntaxError(ValueError):
    """Text that is not a JSONPath Step Functions accepts; the parser reports it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Invalid JSONPath '{path}': {reason}")
        self.path = path
        self.reason = reason


class PathNotFound(Exception):
    """A definite path that does not resolve.

    ``path`` is the path as written; ``detail`` is Jayway's message (``No results
    for path: $['x']``, ``Missing property in path $['a']``...). AWS quotes it in
    some causes and not in others, so callers choose the wording.
    """

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


# --------------------------------------------------------------------------- steps
#
# A step maps one node to zero or more nodes, appending them to ``out``; ``root``
# is the document, which filters may read with ``$``. Definite paths skip steps
# altogether and follow plain keys (see CompiledPath.find).


@dataclass(frozen=True, slots=True)
class Name:
    keys: tuple[str, ...]

    def apply(self, node: Json, _root: Json, out: list[Json]) -> None:
        if isinstance(node, dict):
            for key in self.keys:
                value = node.get(key, _ABSENT)
                if value is not _ABSENT:
                    out.append(value)


@dataclass(frozen=True, slots=True)
class Index:
    indices: tuple[int, ...]

    def apply(self, node: Json, _root: Json, out: list[Json]) -> None:
        if isinstance(node, list):
            size = len(node)
            out.extend(node[i] for i in self.indices if -size <= i < size)


@dataclass(frozen=True, slots=True)
class Slice:
    start: int | None
    stop: int | None

    def apply(self, node: Json, _root: Json, out: list[Json]) -> None:
        # Python clamps out-of-range bounds exactly as Jayway does.
        if isinstance(node, list):
            out.extend(node[self.start : self.stop])


@dataclass(frozen=True, slots=True)
class Wildcard:
    def apply(self, node: Json, _root: Json, out: list[Json]) -> None:
        if isinstance(node, dict):
            out.extend(node.values())
        elif isinstance(node, list):
            out.extend(node)


@dataclass(frozen=True, slots=True)
class Filter:
    """``[?(...)]``: the elements of an array (or an object itself) the predicate accepts."""

    predicate: Callable[[Json, Json], bool]

    def apply(self, node: Json, root: Json, out: list[Json]) -> None:
        if isinstance(node, list):
            out.extend(item for item in node if self.predicate(item, root))
        elif isinstance(node, dict) and self.predicate(node, root):
            out.append(node)


@dataclass(frozen=True, slots=True)
class Length:
    """``.length()``: the size of an array, object or string."""

    def apply(self, node: Json, _root: Json, out: list[Json]) -> None:
        if isinstance(node, list | dict | str):
            out.append(len(node))


@dataclass(frozen=True, slots=True)
class DeepScan:
    """``..x``: ``inner`` applied to a node and every node below it, parents first."""

    inner: Name | Index | Slice | Wildcard | Filter

    def apply(self, node: Json, root: Json, out: list[Json]) -> None:
        if isinstance(node, dict):
            self.inner.apply(node, root, out)
            children: Any = node.values()
        elif isinstance(node, list):
            self.inner.apply(node, root, out)
            children = node
        else:
            return
        for child in children:
            self.apply(child, root, out)


Step = Name | Index | Slice | Wildcard | Filter | Length | DeepScan


def _run_steps(steps: tuple[Step, ...], node: Json, root: Json) -> list[Json]:
    nodes = [node]
    for step in steps:
        found: list[Json] = []
        for current in nodes:
            step.apply(current, root, found)
        nodes = found
    return nodes


# --------------------------------------------------------------------------- compiled paths


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A parsed path; ``root`` is ``"$"``, ``"$$"`` or a variable's name."""

    text: str
    root: str
    steps: tuple[Step, ...]
    #: definite paths only: the names (``str``) and indices (``int``) to follow
    keys: tuple[str | int, ...] | None
    #: a definite path ending in ``['a','b']``, which Jayway merges into one object
    merge: tuple[str, ...] | None = None
    #: the path ends in ``.length()``, which makes even an indefinite path definite
    length: bool = False

    @property
    def definite(self) -> bool:
        return self.keys is not None or self.length

    @property
    def is_reference_path(self) -> bool:
        """Names and indices from the input root: the only paths ResultPath accepts."""
        return self.root == "$" and self.keys is not None and self.merge is None and not self.length

    def evaluate(self, scope: Scope) -> Json:
        if self.root == "$":
            return self.find(scope.input)
        if self.root == "$$":
            return self.find(scope.context)
        document = scope.variables.get(self.root, _ABSENT)
        if document is _ABSENT:
            raise PathNotFound(self.text, f"The variable '${self.root}' is not defined")
        return self.find(document)

    def find(self, document: Json) -> Json:
        """Evaluate against ``document`` as the root."""
        keys = self.keys
        if keys is None:
            found = _run_steps(self.steps, document, document)
            return len(found) if self.length else found
        node = document
        # The hot path: ``$.a.b`` is two dict lookups and two type checks.
        for position, key in enumerate(keys):
            if type(key) is str:
                if type(node) is not dict:
                    raise PathNotFound(self.text, _not_an_object(keys, position, node))
                node = node.get(key, _ABSENT)
                if node is _ABSENT:
                    if position == len(keys) - 1 and self.merge is None:
                        raise PathNotFound(self.text, f"No results for path: {_jayway(keys)}")
                    missing = _jayway(keys[: position + 1])
                    raise PathNotFound(self.text, f"Missing property in path {missing}")
            else:
                if type(node) is not list:
                    raise PathNotFound(self.text, _not_an_array(keys, position, node))
                if not -len(node) <= key < len(node):  # type: ignore[operator]
                    # Jayway skips an index out of bounds and then has no result.
                    raise PathNotFound(self.text, f"No results for path: {_jayway(keys)}")
                node = node[key]  # type: ignore[index]
        if self.merge is not None:
            if not isinstance(node, dict):
                raise PathNotFound(self.text, f"No results for path: {_jayway(keys)}")
            return {k: node[k] for k in self.merge if k in node}
        if self.length:
            if not isinstance(node, list | dict | str):
                raise PathNotFound(self.text, f"Length function cannot be applied to {dumps(node)}")
            return len(node)
        return node


def evaluate(path: str, scope: Scope) -> Json:
    """The value (definite path) or the list of matches (indefinite path) of ``path``.

    Raises :class:`PathNotFound` when a definite path does not resolve, and
    :class:`PathSyntaxError` when ``path`` is not a path.
    """
    return compile_path(path).evaluate(scope)


@functools.lru_cache(maxsize=4096)
def compile_path(path: str) -> CompiledPath:
    """Parse ``path`` once; the result is immutable, so sharing it is safe."""
    if not path.startswith("$"):
        raise PathSyntaxError(path, "a path starts with '$'")
    if path.startswith("$$"):
        root, position = "$$", 2
    else:
        position = 1
        while position < len(path) and path[position] not in ".[":
            position += 1
        root = path[1:position] or "$"
        if root != "$" and not (root.replace("_", "a").isalnum() and root.isascii()):
            raise PathSyntaxError(path, f"'{root}' is not a variable name")
    steps, position = parse_steps(path, position, stop="")
    if position != len(path):
        raise PathSyntaxError(path, f"unexpected '{path[position]}' at position {position}")
    return _compiled(path, root, steps)


def _compiled(path: str, root: str, steps: list[Step]) -> CompiledPath:
    length = bool(steps) and isinstance(steps[-1], Length)
    if length:
        steps = steps[:-1]
    if any(isinstance(step, Length) for step in steps):
        raise PathSyntaxError(path, "length() must come last")
    keys: list[str | int] = []
    merge: tuple[str, ...] | None = None
    for position, step in enumerate(steps):
        if isinstance(step, Name) and len(step.keys) == 1:
            keys.append(step.keys[0])
        elif isinstance(step, Index) and len(step.indices) == 1:
            keys.append(step.indices[0])
        elif isinstance(step, Name) and position == len(steps) - 1 and not length:
            merge = step.keys
        else:
            return CompiledPath(path, root, tuple(steps), None, None, length)
    return CompiledPath(path, root, tuple(steps), tuple(keys), merge, length)


# --------------------------------------------------------------------------- path syntax


def parse_steps(text: str, position: int, stop: str) -> tuple[list[Step], int]:
    """The steps from ``position`` on, and where they end.

    A dotted name ends at ``.``, ``[``, a blank or any ``stop`` character (filters
    pass their operators, so ``@.a==1`` reads the name ``a``).
    """
    steps: list[Step] = []
    end = len(text)
    while position < end:
        char = text[position]
        if text.startswith("..", position):
            if text.startswith("[", position + 2):
                inner, position = _bracket(text, position + 2)
            else:
                inner, position = _dotted(text, position + 2, stop)
            if isinstance(inner, Length | DeepScan):
                raise PathSyntaxError(text, "'..' must be followed by a name or a bracket")
            steps.append(DeepScan(inner))
        elif char == ".":
            step, position = _dotted(text, position + 1, stop)
            steps.append(step)
        elif char == "[":
            step, position = _bracket(text, position)
            steps.append(step)
        else:
            break
    return steps, position


def _dotted(text: str, position: int, stop: str) -> tuple[Step, int]:
    start = position
    while position < len(text) and text[position] not in ".[ " and text[position] not in stop:
        if text[position] == "(" and text.startswith("()", position):
            position += 2
            break
        position += 1
    name = text[start:position]
    if name == "*":
        return Wildcard(), position
    if name == "length()":
        return Length(), position
    if not name or name.endswith(")"):
        raise PathSyntaxError(text, f"'{name}' at position {start} is not a name")
    return Name((name,)), position


def _bracket(text: str, position: int) -> tuple[Step, int]:
    inner = _skip_blanks(text, position + 1)
    if inner >= len(text):
        raise PathSyntaxError(text, "'[' is not closed")
    if text[inner] in "'\"":
        names: list[str] = []
        while True:
            name, inner = _quoted(text, inner)
            names.append(name)
            inner = _skip_blanks(text, inner)
            if text.startswith(",", inner):
                inner = _skip_blanks(text, inner + 1)
            elif text.startswith("]", inner):
                return Name(tuple(names)), inner + 1
            else:
                raise PathSyntaxError(text, f"expected ']' at position {inner}")
    if text[inner] == "?":
        return _filter(text, inner)
    close = text.find("]", inner)
    if close < 0:
        raise PathSyntaxError(text, "'[' is not closed")
    body = text[inner:close].replace(" ", "")
    try:
        if body == "*":
            return Wildcard(), close + 1
        if ":" in body:
            start, _, stop = body.partition(":")
            if ":" in stop:
                raise ValueError(body)  # Jayway has no slice steps
            return Slice(int(start) if start else None, int(stop) if stop else None), close + 1
        return Index(tuple(int(part) for part in body.split(","))), close + 1
    except ValueError:
        raise PathSyntaxError(text, f"'[{body}]' is not an index, slice or name") from None


def _quoted(text: str, position: int) -> tuple[str, int]:
    """A quoted string from its opening quote; returns it and the index past its end."""
    quote = text[position]
    chars: list[str] = []
    position += 1
    while position < len(text):
        char = text[position]
        # Only the quote and the backslash are escapes: AWS keeps any other
        # backslash, so $['Test\""Name"'] names the key Test\""Name".
        if char == "\\" and text[position + 1 : position + 2] in (quote, "\\"):
            chars.append(text[position + 1])
            position += 2
        elif char == quote:
            return "".join(chars), position + 1
        else:
            chars.append(char)
            position += 1
    raise PathSyntaxError(text, "a quoted string is not closed")


def _skip_blanks(text: str, position: int) -> int:
    while position < len(text) and text[position] == " ":
        position += 1
    return position


# --------------------------------------------------------------------------- filters
#
# ``[?(<expr>)]`` with ``||``, ``&&``, ``!``, parentheses, the comparisons
# ``== != < <= > >= =~ in nin``, ``@``/``$`` paths and JSON literals; a path on
# its own tests existence. A missing operand makes every comparison false except
# ``!=`` (Jayway compares "undefined" and negates equality).

_Operand = Callable[[Json, Json], Json]
_Predicate = Callable[[Json, Json], bool]
_FILTER_STOP: Final = "=!<>&|,)] "


def _filter(text: str, position: int) -> tuple[Filter, int]:
    # position is at '?'
    if not text.startswith("(", _skip_blanks(text, position + 1)):
        raise PathSyntaxError(text, "a filter is written [?(...)]")
    parser = _FilterParser(text, _skip_blanks(text, position + 1))
    predicate = parser.unary()
    close = _skip_blanks(text, parser.position)
    if not text.startswith("]", close):
        raise PathSyntaxError(text, f"expected ']' at position {close}")
    return Filter(predicate), close + 1


class _FilterParser:
    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def _take(self, token: str) -> bool:
        self.position = _skip_blanks(self.text, self.position)
        if self.text.startswith(token, self.position):
            self.position += len(token)
            return True
        return False

    def _fail(self, reason: str) -> PathSyntaxError:
        return PathSyntaxError(self.text, f"{reason} at position {self.position}")

    def disjunction(self) -> _Predicate:
        terms = [self.conjunction()]
        while self._take("||"):
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda node, root: any(term(node, root) for term in terms)

    def conjunction(self) -> _Predicate:
        terms = [self.unary()]
        while self._take("&&"):
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        return lambda node, root: all(term(node, root) for term in terms)

    def unary(self) -> _Predicate:
        if self._take("!"):
            inner = self.unary()
            return lambda node, root: not inner(node, root)
        if self._take("("):
            inner = self.disjunction()
            if not self._take(")"):
                raise self._fail("expected ')'")
            return inner
        return self.comparison()

    def comparison(self) -> _Predicate:
        left = self.operand()
        operator = self._operator()
        if operator is None:
            return lambda node, root: _present(left(node, root))
        right = self.regex() if operator == "=~" else self.operand()
        test = _TESTS[operator]
        return lambda node, root: test(left(node, root), right(node, root))

    def _operator(self) -> str | None:
        self.position = _skip_blanks(self.text, self.position)
        for operator in ("==", "!=", "<=", ">=", "=~", "<", ">", "nin", "in"):
            if self.text.startswith(operator, self.position):
                after = self.text[self.position + len(operator) : self.position + len(operator) + 1]
                # ``in``/``nin`` are words: ``@.a in [1]``, never the start of a name.
                if operator[0].isalpha() and after not in (" ", "["):
                    continue
                self.position += len(operator)
                return operator
        return None

    def operand(self) -> _Operand:
        self.position = _skip_blanks(self.text, self.position)
        text, start = self.text, self.position
        char = text[start : start + 1]
        if char in ("@", "$") and not text.startswith("$$", start):
            steps, self.position = parse_steps(text, start + 1, _FILTER_STOP)
            compiled = _compiled(text, "$", steps)
            if char == "@":
                return lambda node, _root: _relative(compiled, node)
            return lambda _node, root: _relative(compiled, root)
        if char in ("'", '"'):
            value, self.position = _quoted(text, start)
            return lambda _node, _root: value
        if char == "[":
            self.position = start + 1
            items: list[_Operand] = []
            if not self._take("]"):
                items.append(self.operand())
                while self._take(","):
                    items.append(self.operand())
                if not self._take("]"):
                    raise self._fail("expected ']'")
            return lambda node, root: [item(node, root) for item in items]
        match = _LITERAL.match(text, start)
        if match is None:
            raise self._fail("expected a path or a literal")
        self.position = match.end()
        word = match.group()
        literal: Json = {"true": True, "false": False, "null": None}.get(word, _ABSENT)
        if literal is _ABSENT:
            literal = float(word) if any(c in word for c in ".eE") else int(word)
        return lambda _node, _root: literal

    def regex(self) -> _Operand:
        self.position = _skip_blanks(self.text, self.position)
        match = _REGEX.match(self.text, self.position)
        if match is None:
            raise self._fail("expected a /regular expression/")
        self.position = match.end()
        flags = 0
        for letter in match.group(2):
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}.get(letter, 0)
        pattern = re.compile(match.group(1), flags)
        return lambda _node, _root: pattern


_LITERAL: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true\b|false\b|null\b")
_REGEX: Final = re.compile(r"/((?:\\.|[^/\\])*)/([ims]*)")


def _relative(compiled: CompiledPath, node: Json) -> Json:
    try:
        found = compiled.find(node)
    except PathNotFound:
        return _ABSENT
    # ``[?(@.a[*])]``: an indefinite path "exists" when it matches something.
    return _ABSENT if found == [] and not compiled.definite else found


def _present(value: Json) -> bool:
    return value is not _ABSENT


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Json, right: Json) -> bool:
    if left is _ABSENT or right is _ABSENT:
        return False
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def _ordered(left: Json, right: Json) -> bool:
    return (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )


_TESTS: Final[dict[str, Callable[[Json, Json], bool]]] = {
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": lambda a, b: _ordered(a, b) and a < b,
    "<=": lambda a, b: _ordered(a, b) and a <= b,
    ">": lambda a, b: _ordered(a, b) and a > b,
    ">=": lambda a, b: _ordered(a, b) and a >= b,
    "=~": lambda a, b: isinstance(a, str) and b.fullmatch(a) is not None,
    "in": lambda a, b: isinstance(b, list) and any(_equal(a, item) for item in b),
    "nin": lambda a, b: isinstance(b, list) and not any(_equal(a, item) for item in b),
}


# --------------------------------------------------------------------------- Jayway's words


def _jayway(keys: tuple[str | int, ...]) -> str:
    """Jayway's normalized form of a definite path: ``$['a'][0]``."""
    return "$" + "".join(f"[{k}]" if type(k) is int else f"['{k}']" for k in keys)


# Jayway names the Java class it found; AWS parses JSON with Jackson, so these are
# the classes a Jackson-backed provider reports (a best guess: no recording has one).
_JAVA_CLASS: Final = {
    str: "java.lang.String",
    int: "java.lang.Integer",
    float: "java.lang.Double",
    bool: "java.lang.Boolean",
    list: "java.util.ArrayList",
}


def _not_an_object(keys: tuple[str | int, ...], position: int, node: Json) -> str:
    found = "null" if node is None else _JAVA_CLASS.get(type(node), type(node).__name__)
    return (
        f"Expected to find an object with property ['{keys[position]}'] in path "
        f"{_jayway(keys[:position])} but found '{found}'. This is not a json object "
        "according to the JsonProvider: 'com.jayway.jsonpath.spi.json.JacksonJsonProvider'."
    )


def _not_an_array(keys: tuple[str | int, ...], position: int, node: Json) -> str:
    if node is None:
        return f"The path {_jayway(keys[:position])} is null"
    return (
        f"Filter: [{keys[position]}] can only be applied to arrays. "
        f"Current context is: {dumps(node)}"
    )


# --------------------------------------------------------------------------- path fields


def not_found_message(path: str, field: str, input_value: Json) -> str:
    """AWS's cause when ``path`` in ``field`` (``'value.$'``, ``'ErrorPath'``...) is missing."""
    return (
        f"The JSONPath '{path}' specified for the field '{field}' "
        f"could not be found in the input '{dumps(input_value)}'"
    )


def apply_io_path(path: str | Any | None, scope: Scope) -> Json:
    """``InputPath`` / ``OutputPath``: select from ``scope.input``.

    ``MISSING`` (the default ``$``) keeps the value, ``None`` gives ``{}``. A path
    that does not resolve fails with ``States.Runtime`` and AWS's cause
    ``Invalid path '<path>' : <Jayway's detail>``.
    """
    if path is MISSING or path == "$":
        return scope.input
    if path is None:
        return {}
    try:
        return compile_path(path).evaluate(scope)
    except PathNotFound as exc:
        raise StatesFailure(RUNTIME, f"Invalid path '{path}' : {exc.detail}") from None


def apply_result_path(raw_input: Json, result: Json, result_path: str | Any | None) -> Json:
    """``ResultPath``: where a state's result goes in its raw input.

    ``MISSING`` or ``$``: the result replaces the input; ``None``: the input
    passes through unchanged; otherwise a reference path is written, creating
    missing objects on the way. Neither argument is mutated: the containers on the
    path are copied and the rest is shared. A path that cannot be written (through
    a string, past the end of an array...) fails with ``States.Runtime``.
    """
    if result_path is MISSING or result_path == "$":
        return result
    if result_path is None:
        return raw_input
    compiled = compile_path(result_path)
    if not compiled.is_reference_path:
        raise PathSyntaxError(result_path, "ResultPath must be a reference path")
    assert compiled.keys is not None
    written = _write(raw_input, compiled.keys, 0, result)
    if written is _ABSENT:
        cause = f"Unable to apply ReferencePath {result_path} to input {dumps(raw_input)}"
        raise StatesFailure(RUNTIME, cause)
    return written


def _write(node: Json, keys: tuple[str | int, ...], position: int, value: Json) -> Json:
    key = keys[position]
    last = position == len(keys) - 1
    if type(key) is str:
        if not isinstance(node, dict):
            return _ABSENT
        copy = dict(node)
        if last:
            copy[key] = value
        else:
            child = _write(node.get(key, {}), keys, position + 1, value)
            if child is _ABSENT:
                return _ABSENT
            copy[key] = child
        return copy
    if not isinstance(node, list) or not -len(node) <= key < len(node):  # type: ignore[operator]
        return _ABSENT
    items = list(node)
    items[key] = value if last else _write(node[key], keys, position + 1, value)  # type: ignore[index]
    return _ABSENT if items[key] is _ABSENT else items  # type: ignore[index]
