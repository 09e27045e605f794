"""JSONata the way Step Functions runs it.

An expression is the text between ``{%`` and ``%}`` of a field value. It sees

* ``$states`` with ``input``, ``context`` and, when the core supplies them,
  ``result`` and ``errorOutput``;
* every workflow variable in reach as ``$name``;
* JSONata 2.0's functions, minus ``$eval``, plus AWS's own: ``$partition``,
  ``$range``, ``$hash``, ``$random([seed])``, ``$uuid`` and ``$parse``;
* ``$now()``/``$millis()`` read the instant the caller passes in (by default the
  state's entered time from the context object), never a clock.

The expression engine is jsonata-python. It is parsed once per distinct text
(a bounded memo of a pure function) and evaluated with fresh bindings each
time. Results are copied into plain JSON values: JSONata's ``null`` becomes
``None``, integral numbers print as integers (as JavaScript, and so AWS, prints
them), and a function or regex anywhere in the result is an error. Two gaps of
jsonata-python are patched here: its error table says "Object" where JSONata
says "function", and ``$number('abc')`` raises a bare ValueError instead of D3030.

Every failure is a :class:`StatesFailure` with ``States.QueryEvaluationError``
and AWS's wording. This module never reads a clock, never draws randomness
except from :class:`~dirigent.asl.scope.Entropy`, and never does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jsonata as jsonata_python
from jsonata.jexception import JException
from jsonata.utils import Utils

from dirigent.asl import timestamps
from dirigent.asl.failure import QUERY_EVALUATION, StatesFailure
from dirigent.asl.jsontext import dumps, json_type_name
from dirigent.asl.model import MISSING, Json
from dirigent.asl.scope import Entropy, Scope

__all__ = [
    "JsonataBindings",
    "evaluate",
    "evaluate_template",
    "expression_text",
    "is_expression",
    "json_type_name",
    "syntax_error",
    "unexpected_result_type",
]

_OPEN, _CLOSE = "{%", "%}"

#: JavaScript prints integral numbers below 1e21 without exponent or ".0".
_INTEGRAL_LIMIT = 1e21

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonataBindings:
    """What one evaluation can see. ``MISSING`` leaves ``$states.<name>`` undefined."""

    input: Json
    context: Json
    variables: Mapping[str, Json]
    entropy: Entropy
    result: Json = MISSING
    error_output: Json = MISSING
    #: the instant ``$now()``/``$millis()`` return; default: ``context.State.EnteredTime``
    now: datetime | None = field(default=None)

    @classmethod
    def from_scope(
        cls, scope: Scope, *, result: Json = MISSING, error_output: Json = MISSING
    ) -> JsonataBindings:
        return cls(
            input=scope.input,
            context=scope.context,
            variables=scope.variables,
            entropy=scope.entropy,
            result=result,
            error_output=error_output,
        )


# --------------------------------------------------------------------------- public API


def is_expression(value: Json) -> bool:
    """Whether ``value`` is a string of the exact form ``{% ... %}`` (no outer spaces)."""
    return (
        isinstance(value, str)
        and len(value) >= 4
        and value.startswith(_OPEN)
        and value.endswith(_CLOSE)
    )


def expression_text(value: str) -> str:
    """The JSONata text of ``{% expr %}`` as AWS quotes it in causes (trimmed)."""
    if is_expression(value):
        value = value[len(_OPEN) : -len(_CLOSE)]
    return value.strip()


def evaluate(expression: str, bindings: JsonataBindings, *, field: str) -> Json:
    """Evaluate ``expression`` (``{% expr %}`` or bare ``expr``) for ``field``.

    ``field`` is AWS's name for where the expression sits (``Output``,
    ``Output/result``, ``Arguments/Payload``...); it appears in the cause.
    """
    text = expression_text(expression)
    compiled = _compile(text)
    if isinstance(compiled, str):
        raise _threw(text, field, compiled)
    program, functions = compiled
    frame = _frame(bindings, functions)
    try:
        raw = program.evaluate(None, frame)
    except JException as exc:
        raise _threw(text, field, _describe(exc)) from exc
    except _FunctionError as exc:
        raise _threw(text, field, str(exc)) from exc
    except RecursionError as exc:
        raise _threw(text, field, "U1001: Stack overflow error") from exc
    except ZeroDivisionError as exc:
        # JavaScript divides to Infinity, which JSONata then refuses as a result.
        raise _threw(text, field, "D1001: Number out of range: Infinity") from exc
    except ValueError as exc:
        cast = _CAST_FAILURE.fullmatch(str(exc))
        if cast is None:
            raise _threw(text, field, f"ValueError: {exc}") from exc
        # jsonata-python lets float() fail where JSONata raises D3030 ($number('abc')).
        detail = f'D3030: Unable to cast value to a number: "{cast.group(1)}"'
        raise _threw(text, field, detail) from exc
    except Exception as exc:  # the library's own bugs must not escape the core
        raise _threw(text, field, f"{type(exc).__name__}: {exc}") from exc
    if raw is None:
        raise StatesFailure(
            QUERY_EVALUATION,
            f"The JSONata expression '{text}' specified for the field '{field}' "
            "returned nothing (undefined).",
        )
    try:
        return _to_json(raw)
    except _Unsupported as exc:
        raise StatesFailure(
            QUERY_EVALUATION,
            f"The JSONata expression '{text}' specified for the field '{field}' "
            "returned an unsupported result type.",
        ) from exc


def evaluate_template(template: Json, bindings: JsonataBindings, *, field: str) -> Json:
    """Copy ``template``, replacing every ``{% expr %}`` string by its value.

    Nested fields are named ``field/key`` (objects) and ``field/index`` (arrays),
    as AWS names them in causes. Keys are never evaluated.
    """
    if isinstance(template, str):
        return evaluate(template, bindings, field=field) if is_expression(template) else template
    if isinstance(template, dict):
        return {
            key: evaluate_template(value, bindings, field=f"{field}/{key}")
            for key, value in template.items()
        }
    if isinstance(template, list):
        return [
            evaluate_template(value, bindings, field=f"{field}/{index}")
            for index, value in enumerate(template)
        ]
    return template


def syntax_error(expression: str) -> str | None:
    """JSONata's complaint about ``expression`` (``{% %}`` or bare), or ``None`` if it parses."""
    compiled = _compile(expression_text(expression))
    return compiled if isinstance(compiled, str) else None


def unexpected_result_type(
    expression: str, field: str, expected: str, value: Json
) -> StatesFailure:
    """AWS's failure for an expression whose value has the wrong JSON type."""
    return StatesFailure(
        QUERY_EVALUATION,
        f"The JSONata expression '{expression_text(expression)}' specified for the field "
        f"'{field}' returned an unexpected result type. Expected '{expected}', but was "
        f"'{json_type_name(value)}' for value: {dumps(value)}",
    )


# --------------------------------------------------------------------------- compiling


#: AWS's functions, plus the standard ones whose meaning AWS changes or removes.
_OVERRIDDEN = ("partition", "range", "hash", "random", "uuid", "parse", "now", "millis", "eval")
_REFERENCE = re.compile(r"\$(" + "|".join(_OVERRIDDEN) + r")\b")
_PLACEHOLDER = re.compile(r"\{\{\w+\}\}")
_CAST_FAILURE = re.compile(r"could not convert string to float: '(.*)'", re.S)


@lru_cache(maxsize=4096)
def _compile(text: str) -> tuple[Any, frozenset[str]] | str:
    """The parsed program and the overridden functions it names, or the syntax error.

    Memoised because parsing costs several evaluations; the memo holds only the
    pure result of parsing a string, so it is not state in any observable sense.
    Only the functions an expression names are bound when it runs, which keeps
    the common case (no AWS function) free of per-call setup.
    """
    try:
        program = jsonata_python.Jsonata(text)
    except JException as exc:
        return _describe(exc)
    except Exception as exc:  # the parser has its own bugs; report, don't crash
        return f"{type(exc).__name__}: {exc}"
    # We copy results ourselves, so the library's in-place null conversion
    # (which would also rewrite values shared with the input) is switched off.
    program.set_output_convert_nulls(False)
    return program, frozenset(_REFERENCE.findall(text))


def _describe(exc: JException) -> str:
    """``CODE: message`` as JSONata reports it.

    jsonata-python's message table was machine-ported and says "Object" where
    JSONata says "function" ("Argument 1 of Object hash does not match Object
    signature"); the templates are re-rendered with the word put back.
    """
    code = getattr(exc, "error", None)
    if not code:
        return str(exc)
    template = JException.error_codes.get(code)
    if template is None or "Object" not in template:
        return f"{code}: {exc}"
    arguments = [exc.current, exc.expected]
    if exc.extra is not None:
        arguments.append(exc.extra)
    fixed = _PLACEHOLDER.sub("{}", template.replace("Object", "function"))
    try:
        return f"{code}: {fixed.format(*arguments)}"
    except (IndexError, KeyError, ValueError):
        return f"{code}: {exc}"


def _threw(text: str, field: str, detail: str) -> StatesFailure:
    return StatesFailure(
        QUERY_EVALUATION,
        f"The JSONata expression '{text}' specified for the field '{field}' "
        f"threw an error during evaluation. {detail}",
    )


# --------------------------------------------------------------------------- bindings


def _frame(bindings: JsonataBindings, functions: frozenset[str]) -> dict[str, Any]:
    states: dict[str, Json] = {"input": bindings.input, "context": bindings.context}
    if bindings.result is not MISSING:
        states["result"] = bindings.result
    if bindings.error_output is not MISSING:
        states["errorOutput"] = bindings.error_output
    # A top-level None would read as "undefined"; JSON null must stay null.
    frame: dict[str, Any] = {
        name: Utils.NULL_VALUE if value is None else value
        for name, value in bindings.variables.items()
    }
    frame["states"] = states
    for name in functions:
        frame[name] = _aws_function(name, bindings)
    return frame


class _FunctionError(Exception):
    """An AWS function refused its arguments; the text follows AWS's error style."""


class _Unsupported(Exception):
    """A result holds something JSON cannot carry (a function, a regex)."""


def _function(implementation: Callable[..., Any], signature: str) -> Any:
    return jsonata_python.Jsonata.JFunction(
        jsonata_python.Jsonata.JLambda(implementation), signature
    )


def _aws_function(name: str, bindings: JsonataBindings) -> Any:
    if name == "partition":
        return _function(_partition, "<an:a>")
    if name == "range":
        return _function(_range, "<nnn:a>")
    if name == "hash":
        return _function(_hash, "<ss:s>")
    if name == "parse":
        return _function(_parse, "<s:x>")
    if name == "uuid":
        return _function(bindings.entropy.uuid4, "<:s>")
    if name == "random":
        entropy = bindings.entropy

        def random(seed: Any = None) -> float:
            return entropy.random_float(None if seed is None else _whole(seed, "$random", "seed"))

        return _function(random, "<n?:n>")
    if name == "millis":
        # Resolved when called, so a missing entered time fails the evaluation
        # (as data) only if the expression really asks for the time.
        return _function(lambda: _now_millis(bindings), "<:n>")
    if name == "now":
        return _function(
            lambda picture=None, zone=None: jsonata_python.Functions.datetime_from_millis(
                _now_millis(bindings), picture, zone
            ),
            "<s?s?:s>",
        )
    # "eval": AWS removed it, so calling it is "Attempted to invoke a non-function".
    return None


def _now_millis(bindings: JsonataBindings) -> int:
    now = bindings.now
    if now is None:
        entered = _lookup(bindings.context, "State", "EnteredTime")
        if not isinstance(entered, str):
            raise _FunctionError("$now() and $millis() need the state's entered time")
        try:
            now = timestamps.parse_timestamp(entered)
        except timestamps.InvalidTimestamp as exc:
            raise _FunctionError(str(exc)) from exc
    # Integer arithmetic: float seconds * 1000 can land a millisecond short.
    return (now - _EPOCH) // timedelta(milliseconds=1)


def _lookup(value: Json, *keys: str) -> Json:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _whole(value: Any, function: str, argument: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _FunctionError(f"{function}: {argument} must be an integer, got {value!r}")


def _partition(array: list[Any], size: Any) -> list[Any]:
    chunk = _whole(size, "$partition", "size")
    if chunk <= 0:
        raise _FunctionError(f"$partition: size must be greater than 0, got {chunk}")
    items = list(array)
    # A plain list, not a JSONata sequence: [[0]] stays nested (AWS returns [[0]]).
    return [items[start : start + chunk] for start in range(0, len(items), chunk)]


def _range(start: Any, end: Any, step: Any) -> Any:
    first = _whole(start, "$range", "start")
    last = _whole(end, "$range", "end")
    stride = _whole(step, "$range", "step")
    if stride == 0:
        raise _FunctionError("$range: step must not be 0")
    stop = last + (1 if stride > 0 else -1)
    # A JSONata sequence: AWS unwraps a single-element range ($range(1, 9, 9) is 1).
    return Utils.create_sequence_from_iter(range(first, stop, stride))


def _hash(value: str, algorithm: str) -> str:
    name = _HASHES.get(algorithm)
    if name is None:
        raise _FunctionError(
            f"$hash: unsupported algorithm {algorithm!r}; use one of {', '.join(_HASHES)}"
        )
    return hashlib.new(name, value.encode("utf-8")).hexdigest()


def _parse(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(text, parse_constant=reject)
    except ValueError as exc:
        raise _FunctionError(f"$parse: the argument is not valid JSON: {exc}") from exc
    return Utils.NULL_VALUE if value is None else value


# --------------------------------------------------------------------------- results


def _to_json(value: Any) -> Json:
    """A fresh plain-JSON copy of a JSONata result (see the module docstring)."""
    if value is None or value is Utils.NULL_VALUE:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _INTEGRAL_LIMIT:
            return int(value)
        return value
    if isinstance(value, dict):
        # JSONata drops undefined members itself; a None left here is JSON null.
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        # JSONata already dropped undefined items; a None here is a null from the input.
        return [_to_json(item) for item in value]
    raise _Unsupported(type(value).__name__)
