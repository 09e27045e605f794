"""JSONata as Step Functions runs it: bindings, AWS's functions, results, causes, corpus."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dirigent.asl import jsonata
from dirigent.asl.choice import jsonata_condition
from dirigent.asl.failure import QUERY_EVALUATION, StatesFailure
from dirigent.asl.jsonata import (
    JsonataBindings,
    evaluate,
    evaluate_template,
    is_expression,
    syntax_error,
    unexpected_result_type,
)
from dirigent.asl.model import JsonataCondition
from dirigent.asl.scope import Scope


class RecordingEntropy:
    """Deterministic entropy that remembers the seeds it was asked for."""

    def __init__(self) -> None:
        self.seeds: list[int | None] = []

    def uuid4(self) -> str:
        return "6f1c2a4e-0b7d-4c1e-9f3a-2b5d8e7c9a10"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        return start

    def random_float(self, seed: int | None) -> float:
        self.seeds.append(seed)
        return 0.25


def make(
    document: Any = None,
    variables: dict[str, Any] | None = None,
    context: Any = None,
    **extra: Any,
) -> JsonataBindings:
    return JsonataBindings(
        input=document,
        context=context if context is not None else {},
        variables=variables or {},
        entropy=extra.pop("entropy", RecordingEntropy()),
        **extra,
    )


def cause_of(expression: str, bindings: JsonataBindings, field: str = "Output") -> str:
    with pytest.raises(StatesFailure) as caught:
        evaluate(expression, bindings, field=field)
    assert caught.value.error == QUERY_EVALUATION
    return caught.value.cause


# --------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{% $x %}", True),
        ("{%%}", True),
        (" {% $x %}", False),
        ("{% $x %} ", False),
        ("{%}", False),
        ("$x", False),
        (1, False),
    ],
)
def test_only_strings_exactly_wrapped_in_percent_braces_are_expressions(
    value: Any, expected: bool
) -> None:
    assert is_expression(value) is expected


def test_states_exposes_input_context_result_and_error_output() -> None:
    bindings = make(
        {"a": 1}, context={"Execution": {"Name": "run"}}, result=[2], error_output={"Error": "E"}
    )
    assert evaluate("{% $states.input.a %}", bindings, field="Output") == 1
    assert evaluate("{% $states.context.Execution.Name %}", bindings, field="Output") == "run"
    assert evaluate("{% $states.result %}", bindings, field="Output") == [2]
    assert evaluate("{% $states.errorOutput.Error %}", bindings, field="Output") == "E"


def test_result_is_undefined_unless_the_core_supplies_it() -> None:
    assert "returned nothing (undefined)" in cause_of("{% $states.result %}", make({}))


def test_workflow_variables_are_bound_by_name_and_null_stays_null() -> None:
    bindings = make(variables={"answer": 42, "nothing": None})
    assert evaluate("{% $answer %}", bindings, field="Output") == 42
    assert evaluate("{% $nothing %}", bindings, field="Output") is None
    assert evaluate("{% $nothing = null %}", bindings, field="Output") is True


def test_undefined_members_are_dropped_from_constructed_values() -> None:
    assert evaluate("{% [1, $nope, 2] %}", make(), field="Output") == [1, 2]
    assert evaluate("{% {'a': $nope, 'b': null} %}", make(), field="Output") == {"b": None}


def test_integral_numbers_come_back_as_ints_and_others_as_floats() -> None:
    result = evaluate("{% [4 / 2, 1 / 2, $states.input] %}", make(3.0), field="Output")
    assert result == [2, 0.5, 3]
    assert [type(item) for item in result] == [int, float, int]


def test_results_are_fresh_copies_not_the_input_itself() -> None:
    document = {"a": [1]}
    result = evaluate("{% $states.input %}", make(document), field="Output")
    assert result == document
    assert result is not document
    assert result["a"] is not document["a"]


def test_a_bare_expression_evaluates_like_a_wrapped_one() -> None:
    assert evaluate("1 + 1", make(), field="Output") == 2


# --------------------------------------------------------------------------- AWS functions


def test_partition_splits_into_chunks_and_keeps_singletons_nested() -> None:
    assert evaluate("{% $partition([1,2,3,4,5], 2) %}", make(), field="O") == [[1, 2], [3, 4], [5]]
    assert evaluate("{% $partition([0], 2) %}", make(), field="O") == [[0]]


def test_range_includes_its_end_and_unwraps_a_single_element() -> None:
    assert evaluate("{% $range(0, 10, 2) %}", make(), field="O") == [0, 2, 4, 6, 8, 10]
    assert evaluate("{% $range(0, 10, 3) %}", make(), field="O") == [0, 3, 6, 9]
    assert evaluate("{% $range(5, 1, -2) %}", make(), field="O") == [5, 3, 1]
    assert evaluate("{% $range(1, 9, 9) %}", make(), field="O") == 1


@pytest.mark.parametrize(
    ("algorithm", "library"),
    [
        ("MD5", "md5"),
        ("SHA-1", "sha1"),
        ("SHA-256", "sha256"),
        ("SHA-384", "sha384"),
        ("SHA-512", "sha512"),
    ],
)
def test_hash_supports_aws_algorithms(algorithm: str, library: str) -> None:
    digest = evaluate(f"{{% $hash('input data', '{algorithm}') %}}", make(), field="O")
    assert digest == hashlib.new(library, b"input data").hexdigest()


def test_hash_rejects_other_algorithms() -> None:
    assert "threw an error during evaluation" in cause_of("{% $hash('x', 'SHA-3') %}", make())


def test_random_and_uuid_draw_from_the_supplied_entropy() -> None:
    entropy = RecordingEntropy()
    bindings = make(entropy=entropy)
    assert evaluate("{% $random() %}", bindings, field="O") == 0.25
    assert evaluate("{% $random(7) %}", bindings, field="O") == 0.25
    assert entropy.seeds == [None, 7]
    assert evaluate("{% $uuid() %}", bindings, field="O") == entropy.uuid4()


def test_parse_reads_json_text_including_null() -> None:
    assert evaluate("""{% $parse('{"a": [1, 2.0]}') %}""", make(), field="O") == {"a": [1, 2]}
    assert evaluate("{% $parse('null') %}", make(), field="O") is None
    assert "not valid JSON" in cause_of("{% $parse('nope') %}", make())


def test_now_and_millis_read_the_state_entered_time_not_a_clock() -> None:
    bindings = make(context={"State": {"EnteredTime": "2024-01-02T03:04:05.678Z"}})
    assert evaluate("{% $millis() %}", bindings, field="O") == 1704164645678
    assert evaluate("{% $now() %}", bindings, field="O") == "2024-01-02T03:04:05.678Z"
    pinned = make(now=datetime(2030, 1, 1, tzinfo=UTC))
    assert evaluate("{% $now() %}", pinned, field="O") == "2030-01-01T00:00:00.000Z"


def test_eval_is_not_available() -> None:
    assert cause_of("{% $eval('1') %}", make()).endswith(
        "threw an error during evaluation. T1006: Attempted to invoke a non-function"
    )


# --------------------------------------------------------------------------- causes


def test_undefined_result_names_expression_and_field() -> None:
    assert cause_of("{% $doesNotExist %}", make(), field="Output/result") == (
        "The JSONata expression '$doesNotExist' specified for the field 'Output/result' "
        "returned nothing (undefined)."
    )


def test_calling_an_unknown_function_reports_the_jsonata_error_code() -> None:
    assert cause_of("{% $randomSeeded(1) %}", make(), field="Output/FunctionResult") == (
        "The JSONata expression '$randomSeeded(1)' specified for the field "
        "'Output/FunctionResult' threw an error during evaluation. "
        "T1006: Attempted to invoke a non-function"
    )


@pytest.mark.parametrize("expression", ["{% $fn := function($x){$x} %}", "{% /ab/ %}"])
def test_a_function_or_regex_result_is_an_unsupported_result_type(expression: str) -> None:
    assert cause_of(expression, make(), field="Items").endswith(
        "specified for the field 'Items' returned an unsupported result type."
    )


def test_a_syntax_error_is_reported_at_evaluation_and_by_syntax_error() -> None:
    assert syntax_error("{% ( %}") is not None
    assert syntax_error("{% $x + 1 %}") is None
    assert "threw an error during evaluation. S0203" in cause_of("{% ( %}", make())


def test_unexpected_result_type_words_the_value_as_json() -> None:
    failure = unexpected_result_type("{% $ItemsVar %}", "Items", "array", {"foo": "bar"})
    assert failure.cause == (
        "The JSONata expression '$ItemsVar' specified for the field 'Items' returned an "
        "unexpected result type. Expected 'array', but was 'object' for value: {\"foo\":\"bar\"}"
    )


def test_compiled_expressions_are_reused() -> None:
    evaluate("{% 40 + 2 %}", make(), field="O")
    before = jsonata._compile.cache_info().hits
    evaluate("{% 40 + 2 %}", make(), field="O")
    assert jsonata._compile.cache_info().hits == before + 1


# --------------------------------------------------------------------------- templates


def test_templates_evaluate_nested_expressions_and_copy_everything_else() -> None:
    template = {
        "value": "{% $states.input.a %}",
        "list": [1, "{% $states.input.a + 1 %}", " {% not evaluated %}"],
        "$": "$.a",
        "{% key %}": None,
    }
    assert evaluate_template(template, make({"a": 1}), field="Output") == {
        "value": 1,
        "list": [1, 2, " {% not evaluated %}"],
        "$": "$.a",
        "{% key %}": None,
    }


def test_template_causes_name_the_nested_field() -> None:
    with pytest.raises(StatesFailure) as caught:
        evaluate_template({"a": {"b": "{% $nope %}"}}, make(), field="Output")
    assert "for the field 'Output/a/b' returned nothing" in caught.value.cause


# --------------------------------------------------------------------------- corpus

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "asl"
_STATE_FIELDS = {
    "Pass": {"Output", "Assign", "Result"},
    "Choice": {"Choices", "Default", "Output", "Assign"},
    "Fail": {"Error", "Cause"},
    "Succeed": set(),
}
_COMMON = {"Type", "Next", "End", "Comment", "QueryLanguage"}


def runnable(definition: dict[str, Any]) -> bool:
    """Pass/Choice/Fail/Succeed machines whose JSONPath states only hold constants."""
    top = definition.get("QueryLanguage", "JSONPath")
    for state in definition["States"].values():
        allowed = _STATE_FIELDS.get(state["Type"])
        if allowed is None or not set(state) <= allowed | _COMMON:
            return False
        if state.get("QueryLanguage", top) == "JSONPath" and (
            state["Type"] == "Choice" or "$" in json.dumps(state.get("Assign", {}))
        ):
            return False
    return True


def run(definition: dict[str, Any], document: Any) -> dict[str, Any]:
    """Fold the machine with the data flow AWS documents for JSONata states."""
    top = definition.get("QueryLanguage", "JSONPath")
    variables: dict[str, Any] = {}
    name = definition["StartAt"]
    for _ in range(100):
        state = definition["States"][name]
        bindings = JsonataBindings(
            input=document,
            context={"State": {"Name": name}},
            variables=dict(variables),
            entropy=RecordingEntropy(),
        )
        jsonata_state = state.get("QueryLanguage", top) == "JSONata"
        try:
            if state["Type"] == "Fail":
                error = state.get("Error")
                cause = state.get("Cause")
                if jsonata_state:
                    error = evaluate_template(error, bindings, field="Error")
                    cause = evaluate_template(cause, bindings, field="Cause")
                return {"status": "FAILED", "error": error, "cause": cause}
            holder, following = state, state.get("Next")
            if state["Type"] == "Choice":
                chosen = [
                    rule
                    for rule in state["Choices"]
                    if jsonata_condition(JsonataCondition(condition=rule["Condition"]), bindings)
                ]
                if chosen:
                    holder, following = chosen[0], chosen[0]["Next"]
                elif "Default" in state:
                    following = state["Default"]
                else:
                    return {"status": "FAILED", "error": "States.NoChoiceMatched", "cause": None}
            output = state.get("Result", document)
            assigned = holder.get("Assign", {})
            if jsonata_state:
                if "Output" in holder:
                    output = evaluate_template(holder["Output"], bindings, field="Output")
                assigned = evaluate_template(assigned, bindings, field="Assign")
        except StatesFailure as failure:
            return {"status": "FAILED", "error": failure.error, "cause": failure.cause}
        variables.update(assigned)
        document = output
        if state["Type"] == "Succeed" or state.get("End"):
            return {"status": "SUCCEEDED", "output": document}
        name = following
    raise AssertionError("the machine did not end")


def jsonata_cases() -> list[Any]:
    if not (CORPUS / "dev_index.json").exists():
        return []
    cases = []
    for entry in json.loads((CORPUS / "dev_index.json").read_text()):
        if not any(feature.startswith("jsonata") for feature in entry["features"]):
            continue
        folder = CORPUS / "dev" / entry["id"]
        if runnable(json.loads((folder / "definition.json").read_text())):
            cases.append(pytest.param(folder, id=entry["id"]))
    return cases


JSONATA_CASES = jsonata_cases()


@pytest.mark.skipif(not JSONATA_CASES, reason="the ASL corpus is not checked out next to the repo")
@pytest.mark.parametrize("folder", JSONATA_CASES)
def test_recorded_jsonata_executions_produce_what_aws_produced(folder: Path) -> None:
    definition = json.loads((folder / "definition.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())
    outcome = run(definition, json.loads((folder / "input.json").read_text()))
    assert outcome["status"] == expected["status"], outcome
    if expected["status"] == "SUCCEEDED":
        assert outcome["output"] == expected["output"]
        return
    assert outcome["error"] == expected["error"]
    # The core prefixes "An error occurred while executing the state ..." itself.
    assert expected["cause"].endswith(outcome["cause"])


def test_scope_bindings_carry_the_scope() -> None:
    entropy = RecordingEntropy()
    scope = Scope(input={"a": 1}, context={"c": 2}, variables={"v": 3}, entropy=entropy)
    bindings = JsonataBindings.from_scope(scope, result=4)
    assert evaluate(
        "{% [$states.input.a, $states.context.c, $v, $states.result] %}", bindings, field="O"
    ) == [1, 2, 3, 4]


def test_signature_errors_name_the_function_as_jsonata_words_them() -> None:
    assert cause_of("{% $partition(1) %}", make()).endswith(
        "T0410: Argument 2 of function partition does not match function signature"
    )


def test_a_string_that_is_not_a_number_fails_to_cast() -> None:
    assert cause_of("{% $number('abc') %}", make()).endswith(
        'D3030: Unable to cast value to a number: "abc"'
    )


def test_the_time_is_only_needed_when_the_expression_asks_for_it() -> None:
    assert evaluate("{% 1 %}", make(context={}), field="O") == 1
    assert "need the state's entered time" in cause_of("{% $millis() %}", make(context={}))


def test_a_transform_leaves_the_input_untouched() -> None:
    document = {"a": 1}
    result = evaluate("{% $states.input ~> |$|{'b': 2}| %}", make(document), field="O")
    assert result == {"a": 1, "b": 2}
    assert document == {"a": 1}
