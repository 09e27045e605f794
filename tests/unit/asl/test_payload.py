"""Payload templates: ``.$`` keys, literals, nesting, compile-once, and AWS's cause."""

from __future__ import annotations

from typing import Any

import pytest

from dirigent.asl.failure import RUNTIME, StatesFailure
from dirigent.asl.intrinsics import IntrinsicSyntaxError
from dirigent.asl.jsonpath import PathSyntaxError
from dirigent.asl.payload import TemplateError, compile_template, evaluate_template
from dirigent.asl.scope import Scope


class FixedEntropy:
    def uuid4(self) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        return start

    def random_float(self, seed: int | None) -> float:
        return 0.5


def scope(document: Any, variables: dict[str, Any] | None = None) -> Scope:
    context = {"Execution": {"Input": document}, "State": {"Name": "S"}}
    return Scope(document, context, variables or {}, FixedEntropy())


def test_dollar_keys_take_paths_and_lose_their_suffix() -> None:
    template = {"value.$": "$.a", "ctx.$": "$$.State.Name", "var.$": "$v.k", "plain": "$.a"}
    out = evaluate_template(template, scope({"a": 1}, {"v": {"k": 2}}))
    assert out == {"value": 1, "ctx": "S", "var": 2, "plain": "$.a"}


def test_dollar_keys_take_intrinsic_functions() -> None:
    template = {"greeting.$": "States.Format('Hello {}', $.name)"}
    assert evaluate_template(template, scope({"name": "Ada"})) == {"greeting": "Hello Ada"}


def test_templates_nest_through_objects_and_arrays() -> None:
    template = {"outer": {"inner.$": "$.x"}, "list": [{"item.$": "$.x"}, "lit", 3]}
    out = evaluate_template(template, scope({"x": "X"}))
    assert out == {"outer": {"inner": "X"}, "list": [{"item": "X"}, "lit", 3]}


def test_literals_that_look_like_expressions_are_copied_as_written() -> None:
    # Recorded on AWS (Assign base_constant_literals): only ``.$`` keys are evaluated.
    template = {"p": "$.no.such.path", "f": "States.Format('{}', $v)", "j": "{% $x %}", "n": None}
    assert evaluate_template(template, scope({}), "Assign") == template


def test_a_template_that_is_not_an_object_is_its_own_value() -> None:
    assert evaluate_template("text", scope({})) == "text"
    assert evaluate_template([1, {"a": 2}], scope({})) == [1, {"a": 2}]


def test_a_compiled_template_serves_many_scopes() -> None:
    compiled = compile_template({"v.$": "$.v"}, "ResultSelector")
    assert compiled.field == "ResultSelector"
    assert compiled.evaluate(scope({"v": 1})) == {"v": 1}
    assert compiled.evaluate(scope({"v": 2})) == {"v": 2}


def test_evaluation_builds_new_objects_and_leaves_the_template_alone() -> None:
    template = {"a.$": "$.x", "b": {"c": 1}}
    first = evaluate_template(template, scope({"x": 1}))
    second = evaluate_template(template, scope({"x": 2}))
    assert first is not second
    assert template == {"a.$": "$.x", "b": {"c": 1}}


def test_an_indefinite_path_that_matches_nothing_gives_an_empty_list() -> None:
    assert evaluate_template({"item.$": "$.item.items[1:5]"}, scope({})) == {"item": []}


def test_a_missing_path_fails_with_the_recorded_cause() -> None:
    template = {"value.$": "$$.Execution.Input.no_such_jsonpath"}
    with pytest.raises(StatesFailure) as caught:
        evaluate_template(template, scope({"int-literal": 0}))
    assert caught.value.error == RUNTIME
    assert caught.value.cause == (
        "The JSONPath '$$.Execution.Input.no_such_jsonpath' specified for the field "
        "'value.$' could not be found in the input '{\"int-literal\":0}'"
    )


def test_a_missing_path_inside_an_intrinsic_names_the_field_of_the_call() -> None:
    with pytest.raises(StatesFailure) as caught:
        evaluate_template({"msg.$": "States.Format('{}', $.gone)"}, scope({}))
    assert caught.value.cause == (
        "The JSONPath '$.gone' specified for the field 'msg.$' could not be found in the input '{}'"
    )


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ({"a.$": 1}, TemplateError),
        ({"a.$": "not a path"}, TemplateError),
        ({"a.$": "$.a["}, PathSyntaxError),
        ({"a.$": "States.Format("}, IntrinsicSyntaxError),
    ],
)
def test_bad_dollar_values_are_rejected_when_compiling(
    template: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        compile_template(template)
