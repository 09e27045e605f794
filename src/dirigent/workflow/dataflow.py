"""A state's data flow in either query language, as the core needs it.

JSONPath states shape data with ``InputPath`` → ``Parameters`` → (work) →
``ResultSelector`` → ``ResultPath`` → ``OutputPath``; JSONata states with
``Arguments`` → (work) → ``Output``, both with ``Assign``. This module hides
the difference: the core asks for "the input the work sees", "the state's
output given this result" and "the variables this state assigns", and gets
:class:`~dirigent.asl.failure.StatesFailure` when the language says the state
fails. It never touches history or commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dirigent.asl import failure, jsonata, jsonpath, payload
from dirigent.asl.failure import StatesFailure
from dirigent.asl.jsontext import dumps
from dirigent.asl.model import JSONATA, MISSING, Json, State
from dirigent.asl.scope import Entropy, Scope


@dataclass(frozen=True, slots=True)
class Frame:
    """What one state sees while it runs: its raw input, the context, the variables."""

    state: State
    raw_input: Json
    context: Json
    variables: Mapping[str, Json]
    entropy: Entropy

    @property
    def is_jsonata(self) -> bool:
        return self.state.query_language == JSONATA

    def scope(self, current: Json) -> Scope:
        return Scope(current, self.context, self.variables, self.entropy)

    def bindings(
        self, *, result: Json = MISSING, error_output: Json = MISSING
    ) -> jsonata.JsonataBindings:
        return jsonata.JsonataBindings(
            input=self.raw_input,
            context=self.context,
            variables=self.variables,
            entropy=self.entropy,
            result=result,
            error_output=error_output,
        )


def _not_found(field: str, path: str, data: Json) -> StatesFailure:
    return StatesFailure(
        failure.RUNTIME,
        f"The JSONPath '{path}' specified for the field '{field}' could not be found "
        f"in the input '{dumps(data)}'",
    )


def read_path(frame: Frame, path: str, data: Json, field: str) -> Json:
    """A path's value, failing the state as AWS does when it resolves to nothing."""
    try:
        return jsonpath.evaluate(path, frame.scope(data))
    except jsonpath.PathNotFound as exc:
        raise _not_found(field, path, data) from exc


def effective_input(frame: Frame) -> Json:
    """The input after ``InputPath`` (JSONPath); JSONata states see their raw input."""
    if frame.is_jsonata:
        return frame.raw_input
    path = frame.state.input_path
    if path is MISSING or path == "$":
        return frame.raw_input
    if path is None:
        return {}
    return read_path(frame, path, frame.raw_input, "InputPath")


def arguments(frame: Frame, effective: Json, field: str = "Parameters") -> Json:
    """``Parameters`` (JSONPath) or ``Arguments`` (JSONata), else the effective input."""
    state: Any = frame.state
    if frame.is_jsonata:
        template = getattr(state, "arguments", MISSING)
        if template is MISSING:
            return effective
        return jsonata.evaluate_template(template, frame.bindings(), field="Arguments")
    template = getattr(state, "parameters", MISSING)
    if template is MISSING:
        return effective
    return payload.evaluate_template(template, frame.scope(effective), field)


def select_result(frame: Frame, result: Json) -> Json:
    """``ResultSelector`` (JSONPath only)."""
    template = getattr(frame.state, "result_selector", MISSING)
    if frame.is_jsonata or template is MISSING:
        return result
    return payload.evaluate_template(template, frame.scope(result), "ResultSelector")


def output(frame: Frame, effective: Json, result: Json = MISSING) -> Json:
    """The state's output from its result (or, for states without one, its input).

    JSONPath: ``ResultPath`` merges the result into the raw input, then
    ``OutputPath`` selects. JSONata: ``Output`` is evaluated, by default the
    result (or the input when there is no result).
    """
    state: Any = frame.state
    if frame.is_jsonata:
        template = state.output
        default = frame.raw_input if result is MISSING else result
        if template is MISSING:
            return default
        return jsonata.evaluate_template(template, frame.bindings(result=result), field="Output")
    if result is MISSING:
        merged = effective
    else:
        merged = jsonpath.apply_result_path(
            frame.raw_input, result, getattr(state, "result_path", MISSING)
        )
    return apply_output_path(frame, merged)


def apply_output_path(frame: Frame, data: Json) -> Json:
    path = frame.state.output_path
    if path is MISSING or path == "$":
        return data
    if path is None:
        return {}
    try:
        return jsonpath.evaluate(path, frame.scope(data))
    except jsonpath.PathNotFound as exc:
        raise StatesFailure(failure.RUNTIME, f"Invalid path '{path}' : {exc.detail}") from exc


def assignments(
    frame: Frame, template: Json, current: Json, *, result: Json = MISSING
) -> dict[str, Json]:
    """The variables an ``Assign`` block sets, evaluated against the old variables."""
    if template is MISSING:
        return {}
    if frame.is_jsonata:
        values = jsonata.evaluate_template(template, frame.bindings(result=result), field="Assign")
    else:
        values = payload.evaluate_template(template, frame.scope(current), "Assign")
    if not isinstance(values, dict):
        return {}
    return values


def error_output(error: str | None, cause: str | None) -> dict[str, Json]:
    """The object a Catch passes on: AWS omits neither key, using null when unknown."""
    return {"Error": error, "Cause": cause}
