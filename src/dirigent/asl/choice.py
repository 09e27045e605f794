"""Choice rules: does a condition hold for the state's input?

JSONPath rules (:class:`~dirigent.asl.model.Comparison`, ``And``, ``Or``,
``Not``) follow AWS's type rules:

* a comparison whose operands have the wrong JSON types is simply false — a
  string is never ``NumericEquals`` anything, ``true`` is not a number, an
  unparseable string is not a timestamp;
* ``IsPresent`` is the one test that may look at a path that does not resolve
  (it is then false); any other rule whose ``Variable``, or whose ``...Path``
  operand, does not resolve fails the state with ``States.Runtime``.

A JSONata rule (:class:`~dirigent.asl.model.JsonataCondition`) must evaluate to
a boolean; anything else is a ``States.QueryEvaluationError``.

This module never raises anything but :class:`StatesFailure` for bad data, and
never reads paths itself: :mod:`dirigent.asl.jsonpath` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dirigent.asl import jsonpath, timestamps
from dirigent.asl.failure import RUNTIME, StatesFailure
from dirigent.asl.jsonata import (
    JsonataBindings,
    evaluate,
    is_expression,
    unexpected_result_type,
)
from dirigent.asl.model import And, Comparison, Condition, Json, JsonataCondition, Not, Or
from dirigent.asl.scope import Scope

__all__ = ["OPERATORS", "jsonata_condition", "matches", "string_matches"]

_MISSING_PATH = (
    "Invalid path '{path}': The choice state's condition path references an invalid value."
)


def matches(condition: Condition, scope: Scope) -> bool:
    """Whether ``condition`` holds in ``scope`` (JSONPath rules and JSONata ``Condition``)."""
    if isinstance(condition, Comparison):
        return _compare(condition, scope)
    if isinstance(condition, And):
        return all(matches(rule, scope) for rule in condition.rules)
    if isinstance(condition, Or):
        return any(matches(rule, scope) for rule in condition.rules)
    if isinstance(condition, Not):
        return not matches(condition.rule, scope)
    return jsonata_condition(condition, JsonataBindings.from_scope(scope))


def jsonata_condition(condition: JsonataCondition, bindings: JsonataBindings) -> bool:
    """The value of a JSONata rule's ``Condition``, which must be a boolean."""
    value = condition.condition
    if not is_expression(value):
        # The parser only lets a literal true/false through.
        return bool(value)
    result = evaluate(value, bindings, field="Condition")
    if not isinstance(result, bool):
        raise unexpected_result_type(value, "Condition", "boolean", result)
    return result


def string_matches(value: str, pattern: str) -> bool:
    """ASL's ``StringMatches``: ``*`` matches any run of characters, ``\\*`` a star.

    A backslash escapes the character after it (so ``\\\\`` is one backslash);
    nothing else is special. Matching is a linear scan with backtracking to the
    last star, so no pattern can blow up the way a translated regex might.
    """
    tokens: list[str | None] = []  # None is a wildcard, a str one literal character
    escaped = False
    for char in pattern:
        if escaped:
            tokens.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            tokens.append(None)
        else:
            tokens.append(char)
    if escaped:
        tokens.append("\\")
    position = token = 0
    star_token, star_position = -1, 0
    while position < len(value):
        if token < len(tokens) and tokens[token] is None:
            star_token, star_position = token, position
            token += 1
        elif token < len(tokens) and tokens[token] == value[position]:
            token += 1
            position += 1
        elif star_token >= 0:
            star_position += 1
            position, token = star_position, star_token + 1
        else:
            return False
    return all(rest is None for rest in tokens[token:])


# --------------------------------------------------------------------------- comparisons


def _compare(rule: Comparison, scope: Scope) -> bool:
    operator = rule.operator
    try:
        value = jsonpath.evaluate(rule.variable, scope)
    except jsonpath.PathNotFound as exc:
        if operator == "IsPresent":
            return rule.operand is False
        raise StatesFailure(RUNTIME, _MISSING_PATH.format(path=rule.variable)) from exc
    if operator == "IsPresent":
        return rule.operand is True
    test = _IS_TESTS.get(operator)
    if test is not None:
        return test(value) is rule.operand
    operand = rule.operand
    if rule.by_path:
        try:
            operand = jsonpath.evaluate(rule.operand, scope)
        except jsonpath.PathNotFound as exc:
            raise StatesFailure(RUNTIME, _MISSING_PATH.format(path=rule.operand)) from exc
    family, relation = _BINARY[operator]
    return family(value, operand, relation)


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Json, operand: Json, relation: Callable[[Any, Any], bool]) -> bool:
    return isinstance(value, str) and isinstance(operand, str) and relation(value, operand)


def _numbers(value: Json, operand: Json, relation: Callable[[Any, Any], bool]) -> bool:
    return _is_number(value) and _is_number(operand) and relation(value, operand)


def _booleans(value: Json, operand: Json, relation: Callable[[Any, Any], bool]) -> bool:
    return isinstance(value, bool) and isinstance(operand, bool) and relation(value, operand)


def _timestamps(value: Json, operand: Json, relation: Callable[[Any, Any], bool]) -> bool:
    if not (isinstance(value, str) and isinstance(operand, str)):
        return False
    try:
        # (datetime, nanoseconds) pairs keep AWS's nanosecond precision.
        return relation(timestamps.instant(value), timestamps.instant(operand))
    except timestamps.InvalidTimestamp:
        return False


def _matches(value: Json, operand: Json, _: Callable[[Any, Any], bool]) -> bool:
    return isinstance(value, str) and isinstance(operand, str) and string_matches(value, operand)


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _lt(a: Any, b: Any) -> bool:
    return bool(a < b)


def _gt(a: Any, b: Any) -> bool:
    return bool(a > b)


def _le(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _ge(a: Any, b: Any) -> bool:
    return bool(a >= b)


_Family = Callable[[Json, Json, Callable[[Any, Any], bool]], bool]

_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": _eq,
    "LessThan": _lt,
    "GreaterThan": _gt,
    "LessThanEquals": _le,
    "GreaterThanEquals": _ge,
}

_FAMILIES: dict[str, _Family] = {
    "String": _strings,
    "Numeric": _numbers,
    "Timestamp": _timestamps,
}

#: every binary operator, as (type family, relation)
_BINARY: dict[str, tuple[_Family, Callable[[Any, Any], bool]]] = {
    family_name + relation_name: (family, relation)
    for family_name, family in _FAMILIES.items()
    for relation_name, relation in _RELATIONS.items()
}
_BINARY["BooleanEquals"] = (_booleans, _eq)
_BINARY["StringMatches"] = (_matches, _eq)

_IS_TESTS: dict[str, Callable[[Json], bool]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": _is_number,
    "IsString": lambda value: isinstance(value, str),
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": timestamps.is_timestamp,
}

#: every operator name :func:`matches` understands (without the ``Path`` suffix)
OPERATORS: frozenset[str] = frozenset({*_BINARY, *_IS_TESTS, "IsPresent"})
