"""Choice rules: operators, AWS's type rules, failures, and the recorded corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dirigent.asl.choice import OPERATORS, jsonata_condition, matches, string_matches
from dirigent.asl.failure import QUERY_EVALUATION, RUNTIME, StatesFailure
from dirigent.asl.jsonata import JsonataBindings
from dirigent.asl.model import And, Comparison, Condition, JsonataCondition, Not, Or
from dirigent.asl.scope import Scope


class FixedEntropy:
    def uuid4(self) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        return start

    def random_float(self, seed: int | None) -> float:
        return 0.5


def scope(document: Any, variables: dict[str, Any] | None = None) -> Scope:
    return Scope(
        input=document,
        context={"Execution": {"Input": document}},
        variables=variables or {},
        entropy=FixedEntropy(),
    )


def rule(
    operator: str, operand: Any, variable: str = "$.v", *, by_path: bool = False
) -> Comparison:
    return Comparison(variable=variable, operator=operator, operand=operand, by_path=by_path)


# --------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("operator", "value", "operand", "expected"),
    [
        ("StringEquals", "a", "a", True),
        ("StringEquals", "a", "b", False),
        ("StringLessThan", "a", "b", True),
        ("StringGreaterThan", "b", "a", True),
        ("StringLessThanEquals", "a", "a", True),
        ("StringGreaterThanEquals", "a", "b", False),
        ("NumericEquals", 1, 1.0, True),
        ("NumericLessThan", 1, 1.5, True),
        ("NumericGreaterThan", 2, 1.5, True),
        ("NumericLessThanEquals", 2, 2, True),
        ("NumericGreaterThanEquals", 1, 2, False),
        ("BooleanEquals", False, False, True),
        ("BooleanEquals", True, False, False),
        ("TimestampEquals", "2012-10-09T19:00:55Z", "2012-10-09T20:00:55+01:00", True),
        ("TimestampLessThan", "2012-10-09T19:00:55Z", "2012-10-09T19:00:56Z", True),
        (
            "TimestampGreaterThan",
            "2012-10-09T19:00:55.000000002Z",
            "2012-10-09T19:00:55.000000001Z",
            True,
        ),
        ("TimestampLessThanEquals", "2012-10-09T19:00:55Z", "2012-10-09T19:00:55Z", True),
        ("TimestampGreaterThanEquals", "2012-10-09T19:00:54Z", "2012-10-09T19:00:55Z", False),
        ("StringMatches", "log-2024.txt", "log-*.txt", True),
    ],
)
def test_binary_operators_compare_values_of_their_type(
    operator: str, value: Any, operand: Any, expected: bool
) -> None:
    assert matches(rule(operator, operand), scope({"v": value})) is expected


@pytest.mark.parametrize(
    ("operator", "value", "operand"),
    [
        ("StringEquals", 1, "1"),
        ("NumericEquals", "1", 1),
        ("NumericEquals", True, 1),
        ("NumericLessThan", None, 1),
        ("BooleanEquals", 1, True),
        ("BooleanEquals", "true", True),
        ("TimestampEquals", "2012-10-09 19:00:55Z", "2012-10-09 19:00:55Z"),
        ("TimestampEquals", 0, "2012-10-09T19:00:55Z"),
        ("StringMatches", ["a"], "*"),
    ],
)
def test_a_comparison_of_mismatched_types_is_false_not_an_error(
    operator: str, value: Any, operand: Any
) -> None:
    assert matches(rule(operator, operand), scope({"v": value})) is False


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("IsNull", None, True),
        ("IsNull", 0, False),
        ("IsNumeric", 1.5, True),
        ("IsNumeric", True, False),
        ("IsNumeric", "1", False),
        ("IsString", "", True),
        ("IsString", None, False),
        ("IsBoolean", False, True),
        ("IsBoolean", 0, False),
        ("IsTimestamp", "2016-03-14T01:59:00Z", True),
        ("IsTimestamp", "2016-03-14", False),
        ("IsPresent", None, True),
    ],
)
def test_type_tests_check_the_json_type(operator: str, value: Any, expected: bool) -> None:
    assert matches(rule(operator, True), scope({"v": value})) is expected
    assert matches(rule(operator, False), scope({"v": value})) is (not expected)


def test_is_present_on_a_missing_path_is_false_not_an_error() -> None:
    assert matches(rule("IsPresent", True), scope({})) is False
    assert matches(rule("IsPresent", False), scope({})) is True


def test_a_missing_variable_fails_with_states_runtime() -> None:
    with pytest.raises(StatesFailure) as caught:
        matches(rule("IsNull", True, "$.nope"), scope({}))
    assert caught.value.error == RUNTIME
    assert caught.value.cause == (
        "Invalid path '$.nope': The choice state's condition path references an invalid value."
    )


def test_a_missing_operand_path_fails_with_states_runtime() -> None:
    with pytest.raises(StatesFailure) as caught:
        matches(rule("NumericEquals", "$.right", by_path=True), scope({"v": 1}))
    assert caught.value.cause.startswith("Invalid path '$.right': ")


def test_path_operands_are_read_from_the_input() -> None:
    document = {"v": 3, "limit": 3, "name": "x"}
    assert matches(rule("NumericEquals", "$.limit", by_path=True), scope(document))
    assert not matches(rule("StringEquals", "$.name", by_path=True), scope(document))


def test_variables_and_context_can_be_tested() -> None:
    assert matches(rule("NumericEquals", 7, "$count"), scope({}, {"count": 7}))
    assert matches(rule("IsPresent", True, "$$.Execution.Input.v"), scope({"v": 1}))


def test_and_or_not_combine_rules() -> None:
    yes, no = rule("IsNull", True), rule("IsNull", False)
    document = scope({"v": None})
    assert matches(And(rules=(yes, yes)), document)
    assert not matches(And(rules=(yes, no)), document)
    assert matches(Or(rules=(no, yes)), document)
    assert matches(Not(rule=no), document)


def test_every_operator_of_the_language_is_known() -> None:
    families = {"String": 5, "Numeric": 5, "Timestamp": 5}
    assert len(OPERATORS) == sum(families.values()) + len(
        {"BooleanEquals", "StringMatches", "IsNull", "IsNumeric", "IsString"}
        | {"IsBoolean", "IsTimestamp", "IsPresent"}
    )


# --------------------------------------------------------------------------- StringMatches


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("foo23.log", "foo*.log", True),
        ("zebra.log", "*.log", True),
        ("foobar.zebra", "foo*.*", True),
        ("foo.log", "foo*.txt", False),
        ("", "*", True),
        ("abc", "a*b*c", True),
        ("a*c", "a\\*c", True),
        ("abc", "a\\*c", False),
        ("a\\c", "a\\\\c", True),
        ("a.c", "a?c", False),
        ("aaa", "a*a*a*a", False),
    ],
)
def test_string_matches_treats_only_star_as_special(
    value: str, pattern: str, expected: bool
) -> None:
    assert string_matches(value, pattern) is expected


# --------------------------------------------------------------------------- JSONata


def bindings(document: Any) -> JsonataBindings:
    return JsonataBindings(input=document, context={}, variables={}, entropy=FixedEntropy())


def test_a_jsonata_condition_is_evaluated_against_states_input() -> None:
    condition = JsonataCondition(condition="{% $states.input.v >= 20 and $states.input.v < 30 %}")
    assert jsonata_condition(condition, bindings({"v": 25}))
    assert not jsonata_condition(condition, bindings({"v": 30}))
    assert matches(condition, scope({"v": 25}))


def test_a_literal_jsonata_condition_is_its_own_value() -> None:
    assert jsonata_condition(JsonataCondition(condition=True), bindings({}))
    assert not jsonata_condition(JsonataCondition(condition=False), bindings({}))


def test_a_jsonata_condition_that_is_not_boolean_fails() -> None:
    with pytest.raises(StatesFailure) as caught:
        jsonata_condition(JsonataCondition(condition="{% $states.input.v %}"), bindings({"v": "x"}))
    assert caught.value.error == QUERY_EVALUATION
    assert caught.value.cause == (
        "The JSONata expression '$states.input.v' specified for the field 'Condition' returned "
        "an unexpected result type. Expected 'boolean', but was 'string' for value: \"x\""
    )


# --------------------------------------------------------------------------- corpus

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "asl"


def to_condition(raw: dict[str, Any]) -> Condition:
    """A test-only reading of a raw Choice rule (the real parser lives elsewhere)."""
    if "And" in raw:
        return And(rules=tuple(to_condition(item) for item in raw["And"]))
    if "Or" in raw:
        return Or(rules=tuple(to_condition(item) for item in raw["Or"]))
    if "Not" in raw:
        return Not(rule=to_condition(raw["Not"]))
    if "Condition" in raw:
        return JsonataCondition(condition=raw["Condition"])
    (name,) = [key for key in raw if key not in {"Variable", "Next", "Comment", "Assign", "Output"}]
    operator = name.removesuffix("Path") if name.endswith("Path") else name
    return Comparison(
        variable=raw["Variable"],
        operator=operator,
        operand=raw[name],
        by_path=operator != name,
    )


_SIMPLE_PASS = {"Type", "Result", "End", "Next", "Comment"}
_SIMPLE_CHOICE = {"Type", "Choices", "Default", "Comment"}


def runnable(definition: dict[str, Any]) -> bool:
    """Only Choice and literal-Result Pass states, in JSONPath: what this harness can run."""
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        return False
    for state in definition["States"].values():
        allowed = {"Pass": _SIMPLE_PASS, "Choice": _SIMPLE_CHOICE}.get(state["Type"])
        if allowed is None or not set(state) <= allowed:
            return False
        if state["Type"] == "Choice" and any(
            set(choice) & {"Assign", "Output"} for choice in state["Choices"]
        ):
            return False
    return True


def run(definition: dict[str, Any], document: Any) -> dict[str, Any]:
    """Fold the machine: Choice picks a branch, Pass replaces the input with its Result."""
    name = definition["StartAt"]
    for _ in range(100):
        state = definition["States"][name]
        if state["Type"] == "Pass":
            if "Result" in state:
                document = state["Result"]
            if state.get("End"):
                return {"status": "SUCCEEDED", "output": document}
            name = state["Next"]
            continue
        here = scope(document)
        try:
            chosen = [c["Next"] for c in state["Choices"] if matches(to_condition(c), here)]
        except StatesFailure as failure:
            return {"status": "FAILED", "error": failure.error, "cause": failure.cause}
        if chosen:
            name = chosen[0]
        elif "Default" in state:
            name = state["Default"]
        else:
            return {"status": "FAILED", "error": "States.NoChoiceMatched", "cause": None}
    raise AssertionError("the machine did not end")


def choice_cases() -> list[Any]:
    if not (CORPUS / "dev_index.json").exists():
        return []
    cases = []
    for entry in json.loads((CORPUS / "dev_index.json").read_text()):
        if not any(feature.startswith("choice_op:") for feature in entry["features"]):
            continue
        folder = CORPUS / "dev" / entry["id"]
        definition = json.loads((folder / "definition.json").read_text())
        if runnable(definition):
            cases.append(pytest.param(folder, id=entry["id"]))
    return cases


CHOICE_CASES = choice_cases()


@pytest.mark.skipif(not CHOICE_CASES, reason="the ASL corpus is not checked out next to the repo")
@pytest.mark.parametrize("folder", CHOICE_CASES)
def test_recorded_choice_executions_pick_the_branch_aws_picked(folder: Path) -> None:
    definition = json.loads((folder / "definition.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())
    outcome = run(definition, json.loads((folder / "input.json").read_text()))
    assert outcome["status"] == expected["status"]
    if expected["status"] == "SUCCEEDED":
        assert outcome["output"] == expected["output"]
    else:
        assert outcome["error"] == expected["error"]
