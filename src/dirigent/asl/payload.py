"""Payload templates of JSONPath states: ``Parameters``, ``ResultSelector``,
``ItemSelector`` and ``Assign``.

A template is a JSON value in which an object key ending in ``.$`` takes a
path (``$...``, ``$$...``, ``$var...``) or an intrinsic function call, whose
value is stored under the key without its ``.$``; everything else is copied as
written, at any depth, arrays included. ``Assign`` uses the same rules: its keys
(without ``.$``) are the variables' names.

Compile a template once with :func:`compile_template` and keep the result (the
workflow core may cache it per state); :func:`evaluate_template` does both steps
for one-off use. Parts of a template without ``.$`` keys are returned as the
very objects of the definition, and evaluated paths return parts of the scope's
documents, not copies: JSON values in the core are never mutated in place.

A path that does not resolve fails with ``States.Runtime`` and AWS's cause
``The JSONPath '<path>' specified for the field '<key>.$' could not be found in
the input '<input>'``. This module does no I/O and holds no state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dirigent.asl.failure import RUNTIME, StatesFailure
from dirigent.asl.intrinsics import Call, evaluate_call, is_intrinsic, parse_intrinsic
from dirigent.asl.jsonpath import CompiledPath, PathNotFound, compile_path, not_found_message
from dirigent.asl.model import Json
from dirigent.asl.scope import Scope

__all__ = ["CompiledTemplate", "TemplateError", "compile_template", "evaluate_template"]

_Evaluator = Callable[[Scope], Json]


class TemplateError(ValueError):
    """A template the parser should have rejected: a ``.$`` value that is not a path or call.

    Bad paths and calls raise :class:`~dirigent.asl.jsonpath.PathSyntaxError` and
    :class:`~dirigent.asl.intrinsics.IntrinsicSyntaxError` instead.
    """


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template ready to evaluate; immutable, so one instance may serve every execution."""

    field: str
    evaluator: _Evaluator

    def evaluate(self, scope: Scope) -> Json:
        return self.evaluator(scope)


def compile_template(template: Json, field: str = "Parameters") -> CompiledTemplate:
    """Compile ``template``; ``field`` (``Parameters``, ``Assign``...) names it in errors."""
    return CompiledTemplate(field, _compile(template, field))


def evaluate_template(template: Json, scope: Scope, field: str = "Parameters") -> Json:
    """Compile and evaluate ``template`` in one go (prefer a cached :func:`compile_template`)."""
    return _compile(template, field)(scope)


def _compile(value: Json, field: str) -> _Evaluator:
    if not _is_dynamic(value):
        return lambda _scope: value
    if isinstance(value, list):
        items = tuple(_compile(item, field) for item in value)
        return lambda scope: [item(scope) for item in items]
    entries = tuple(
        (key[:-2], _reference(key, item, field))
        if key.endswith(".$")
        else (key, _compile(item, field))
        for key, item in value.items()
    )
    return lambda scope: {key: entry(scope) for key, entry in entries}


def _is_dynamic(value: Json) -> bool:
    """Whether a ``.$`` key occurs anywhere in ``value``."""
    if isinstance(value, dict):
        return any(key.endswith(".$") or _is_dynamic(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_is_dynamic(item) for item in value)
    return False


def _reference(key: str, text: Json, field: str) -> _Evaluator:
    if not isinstance(text, str):
        raise TemplateError(f"{field}: the value of '{key}' must be a path or intrinsic function")
    if is_intrinsic(text):
        call = parse_intrinsic(text)
        return lambda scope: _call(call, key, scope)
    if text.startswith("$"):
        path = compile_path(text)
        return lambda scope: _path(path, key, scope)
    raise TemplateError(f"{field}: the value of '{key}' must be a path or intrinsic function")


def _path(path: CompiledPath, key: str, scope: Scope) -> Json:
    try:
        return path.evaluate(scope)
    except PathNotFound as exc:
        raise StatesFailure(RUNTIME, not_found_message(exc.path, key, scope.input)) from None


def _call(call: Call, key: str, scope: Scope) -> Json:
    try:
        return evaluate_call(call, scope)
    except PathNotFound as exc:
        # A path argument of the call: AWS names the field the call belongs to.
        raise StatesFailure(RUNTIME, not_found_message(exc.path, key, scope.input)) from None
