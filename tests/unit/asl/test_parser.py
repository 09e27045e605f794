"""The ASL parser: valid documents become the model, invalid ones list every problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dirigent.asl.model import (
    JSONATA,
    JSONPATH,
    MISSING,
    And,
    ChoiceState,
    Comparison,
    FailState,
    JsonataCondition,
    MapState,
    Not,
    ParallelState,
    PassState,
    TaskState,
    WaitState,
)
from dirigent.asl.parser import parse_definition
from dirigent.errors import DefinitionError, Diagnostic

LAMBDA = "arn:aws:lambda:us-east-1:111111111111:function:work"


def machine(states: dict[str, Any], start: str | None = None, **top: Any) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states, **top}


def one(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    return machine({"S": state}, **top)


def problems(definition: Any, **kwargs: Any) -> list[Diagnostic]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition, **kwargs)
    return list(caught.value.diagnostics)


def pointers(definition: Any, **kwargs: Any) -> list[str]:
    return [d.pointer for d in problems(definition, **kwargs)]


def messages(definition: Any, **kwargs: Any) -> list[str]:
    return [d.message for d in problems(definition, **kwargs)]


# --------------------------------------------------------------------------- JSON text


def test_text_bytes_and_mappings_give_the_same_machine() -> None:
    definition = one({"Type": "Pass", "End": True})
    text = json.dumps(definition)
    assert parse_definition(text) == parse_definition(text.encode()) == parse_definition(definition)


def test_source_keeps_the_raw_definition() -> None:
    definition = one({"Type": "Pass", "End": True})
    assert parse_definition(definition).source == definition


def test_duplicate_keys_are_rejected_with_their_pointer() -> None:
    text = '{"StartAt": "S", "States": {"S": {"Type": "Pass", "End": true, "End": true}}}'
    assert problems(text) == [Diagnostic("/States/S/End", "Duplicate field 'End'")]


def test_nan_and_infinity_are_not_json() -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        text = '{"StartAt": "S", "States": {"S": {"Type": "Pass", "Result": %s, "End": true}}}'
        assert "not a valid JSON value" in messages(text % constant)[0]


def test_bytes_that_are_not_utf8_are_rejected() -> None:
    assert "UTF-8" in messages(b'{"StartAt": "\xff"}')[0]


def test_syntax_errors_give_line_and_column() -> None:
    (message,) = messages('{\n  "StartAt": }')
    assert "line 2, column 14" in message


def test_an_unrecognized_token_is_worded_as_aws_words_it() -> None:
    (message,) = messages("not a definition")
    assert message.startswith("Unrecognized token 'not': was expecting (JSON String")
    assert message.endswith("line 1, column 4")


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = '{"StartAt": "S", "States": {"S": {"Type": "Pass", "Result": %s, "End": true}}}'
    assert "nested deeper" in messages(text % deep)[0]


def test_deep_nesting_in_a_mapping_is_refused_too() -> None:
    value: Any = []
    for _ in range(10_000):
        value = [value]
    assert "nested deeper" in messages(one({"Type": "Pass", "Result": value, "End": True}))[0]


def test_a_definition_must_be_an_object() -> None:
    assert messages("[]") == ["The definition must be a JSON object, not array"]


# --------------------------------------------------------------------------- machine


def test_missing_top_level_fields_are_listed_together() -> None:
    assert problems({}) == [Diagnostic("", "These fields are required: [States, StartAt]")]


def test_unknown_top_level_fields_are_rejected() -> None:
    assert pointers(one({"Type": "Pass", "End": True}, Foo=1)) == ["/Foo"]


def test_start_at_must_name_a_state() -> None:
    assert pointers(machine({"A": {"Type": "Pass", "End": True}}, start="B")) == ["/StartAt"]


def test_next_to_a_missing_state_is_reported_at_next() -> None:
    found = problems(one({"Type": "Pass", "Next": "Nowhere"}))
    assert Diagnostic("/States/S/Next", "Missing 'Next' target: Nowhere") in found


def test_unreachable_states_are_rejected() -> None:
    definition = machine({"A": {"Type": "Pass", "End": True}, "B": {"Type": "Pass", "End": True}})
    assert problems(definition) == [Diagnostic("/States/B", 'State "B" is not reachable.')]


def test_a_machine_without_a_reachable_terminal_state_is_rejected() -> None:
    definition = machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}})
    assert pointers(definition) == ["/States"]


def test_state_names_longer_than_80_characters_are_rejected() -> None:
    name = "x" * 81
    assert pointers(machine({name: {"Type": "Pass", "End": True}})) == [f"/States/{name}"]


def test_state_names_are_unique_across_nested_machines() -> None:
    inner = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    definition = machine(
        {"A": {"Type": "Map", "ItemProcessor": inner, "Next": "B"}, "B": {"Type": "Succeed"}}
    )
    assert "Duplicate state name: A" in messages(definition)


def test_pointers_escape_slash_and_tilde() -> None:
    definition = machine({"a/b~c": {"Type": "Pass", "Next": "gone"}})
    assert "/States/a~1b~0c/Next" in pointers(definition)


def test_every_problem_is_reported_not_just_the_first() -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Next": "B", "Bogus": 1},
            "B": {"Type": "Wait", "Seconds": -1, "End": True},
            "C": {"Type": "Task", "Resource": LAMBDA, "End": True, "TimeoutSeconds": "x"},
        }
    )
    assert pointers(definition) == [
        "/States/A/Bogus",
        "/States/B/Seconds",
        "/States/C/TimeoutSeconds",
        "/States/C",
    ]


# --------------------------------------------------------------------------- states


def test_unknown_state_type_lists_the_valid_ones() -> None:
    (message,) = messages(one({"Type": "Nap", "End": True}))
    assert message.startswith("The field 'Type' should have one of these values: [Task, Wait")


def test_unknown_state_fields_are_rejected() -> None:
    (found,) = problems(one({"Type": "Pass", "End": True, "bugInputPath": "$"}))
    assert found == Diagnostic(
        "/States/S/bugInputPath", 'The field "bugInputPath" is not supported by Step Functions'
    )


def test_next_and_end_together_are_rejected() -> None:
    definition = machine(
        {"A": {"Type": "Pass", "Next": "B", "End": True}, "B": {"Type": "Succeed"}}
    )
    assert pointers(definition) == ["/States/A/End"]


def test_neither_next_nor_end_is_rejected() -> None:
    assert pointers(one({"Type": "Pass"}))[0] == "/States/S"


def test_choice_succeed_and_fail_take_no_next_or_end() -> None:
    assert pointers(one({"Type": "Succeed", "End": True})) == ["/States/S/End"]
    assert pointers(one({"Type": "Fail", "End": True})) == ["/States/S/End"]


def test_pass_state_is_parsed_with_its_fields() -> None:
    state = parse_definition(
        one(
            {
                "Type": "Pass",
                "Result": {"a": 1},
                "ResultPath": "$.r",
                "InputPath": None,
                "End": True,
            }
        )
    ).state("S")
    assert isinstance(state, PassState)
    assert (state.result, state.result_path, state.input_path, state.output_path) == (
        {"a": 1},
        "$.r",
        None,
        MISSING,
    )
    assert state.end
    assert state.type == "Pass"


def test_result_path_must_be_a_reference_path() -> None:
    for bad in ("$foo", "$.a[*]", "$..a", "$$.Execution", ".guid", "$..."):
        assert pointers(one({"Type": "Pass", "ResultPath": bad, "End": True})) == [
            "/States/S/ResultPath"
        ], bad


def test_input_path_may_use_filters_and_negative_indexes() -> None:
    for good in ("$.books[-2]", "$.a[?(@.price < 10)].title", "$$.Execution.Id", "$var.x"):
        parse_definition(one({"Type": "Pass", "InputPath": good, "End": True}))


def test_payload_template_paths_are_checked() -> None:
    found = problems(one({"Type": "Pass", "Parameters": {"a": {"b.$": "ipsum"}}, "End": True}))
    assert found == [
        Diagnostic(
            "/States/S/Parameters/a",
            "The value for the field 'b.$' must be a valid JSONPath "
            "or a valid intrinsic function call",
        )
    ]


def test_payload_template_field_defined_twice_is_rejected() -> None:
    definition = one({"Type": "Pass", "Parameters": {"x": 1, "x.$": "$.x"}, "End": True})
    assert messages(definition) == ["The field 'x' is defined twice (as 'x.$')"]


def test_intrinsic_calls_are_checked_for_syntax_and_arity() -> None:
    for bad in (
        "States.Format('a \\\"b\\\"')",
        "States.MathAdd(1,'-1')",
        "States.UUID(1)",
        "States.Nope()",
        "States.Array(",
    ):
        definition = one({"Type": "Pass", "Parameters": {"x.$": bad}, "End": True})
        assert pointers(definition) == ["/States/S/Parameters"], bad
    good = "States.Format('{} and {}', $.a, States.ArrayLength($.b))"
    parse_definition(one({"Type": "Pass", "Parameters": {"x.$": good}, "End": True}))


def test_task_needs_a_resource() -> None:
    assert messages(one({"Type": "Task", "End": True}))[0] == (
        "The field 'Resource' is required but was missing"
    )


def test_task_resource_must_be_a_recognized_integration() -> None:
    (message,) = messages(
        one({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:query", "End": True})
    )
    assert message.startswith("The resource provided arn:<partition>:states:::dynamodb:query")


def test_task_accepts_lambda_arns_sdk_integrations_and_activities() -> None:
    for resource in (
        LAMBDA,
        f"{LAMBDA}:$LATEST",
        "arn:aws:states:::lambda:invoke",
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "arn:aws:states:::states:startExecution.sync:2",
        "arn:aws:states:::aws-sdk:s3:listBuckets",
        "arn:aws:states:us-east-1:111111111111:activity:work",
    ):
        parse_definition(one({"Type": "Task", "Resource": resource, "End": True}))


def test_lambda_aliases_must_be_well_formed() -> None:
    for resource in (f"{LAMBDA}:", f"{LAMBDA}:$*#$7485"):
        assert pointers(one({"Type": "Task", "Resource": resource, "End": True})) == [
            "/States/S/Resource"
        ]


def test_express_machines_refuse_waiting_integrations() -> None:
    sync = one(
        {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync", "End": True}
    )
    assert messages(sync, machine_type="EXPRESS") == [
        "Express state machine does not support '.sync' service integration"
    ]
    parse_definition(sync, machine_type="STANDARD")


def test_timeout_and_its_path_are_exclusive() -> None:
    definition = one(
        {
            "Type": "Task",
            "Resource": LAMBDA,
            "TimeoutSeconds": 5,
            "TimeoutSecondsPath": "$.t",
            "End": True,
        }
    )
    assert pointers(definition) == ["/States/S/TimeoutSecondsPath"]


def test_heartbeat_must_be_shorter_than_timeout() -> None:
    definition = one(
        {
            "Type": "Task",
            "Resource": LAMBDA,
            "TimeoutSeconds": 5,
            "HeartbeatSeconds": 5,
            "End": True,
        }
    )
    assert pointers(definition) == ["/States/S/HeartbeatSeconds"]


def test_credentials_need_a_role_arn() -> None:
    definition = one({"Type": "Task", "Resource": LAMBDA, "Credentials": {}, "End": True})
    assert problems(definition) == [
        Diagnostic("/States/S/Credentials", "The field 'RoleArn' is required but was missing")
    ]


def test_task_is_parsed_with_timing_and_handlers() -> None:
    state = parse_definition(
        one(
            {
                "Type": "Task",
                "Resource": LAMBDA,
                "TimeoutSeconds": 10,
                "HeartbeatSecondsPath": "$.hb",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}],
                "End": True,
            }
        )
    ).state("S")
    assert isinstance(state, TaskState)
    assert (state.timeout_seconds, state.heartbeat_seconds_path) == (10, "$.hb")
    assert state.retry[0].max_attempts == 0
    assert state.retry[0].backoff_rate == 2.0


# --------------------------------------------------------------------------- Retry / Catch


def retry(*retriers: dict[str, Any]) -> dict[str, Any]:
    return one({"Type": "Task", "Resource": LAMBDA, "Retry": list(retriers), "End": True})


@pytest.mark.parametrize(
    ("retrier", "pointer"),
    [
        ({"ErrorEquals": []}, "/States/S/Retry/0/ErrorEquals"),
        ({"ErrorEquals": [True]}, "/States/S/Retry/0/ErrorEquals/0"),
        ({"ErrorEquals": ["X"], "MaxAttempts": -1}, "/States/S/Retry/0/MaxAttempts"),
        ({"ErrorEquals": ["X"], "BackoffRate": 0.5}, "/States/S/Retry/0/BackoffRate"),
        ({"ErrorEquals": ["X"], "IntervalSeconds": 0}, "/States/S/Retry/0/IntervalSeconds"),
        ({"ErrorEquals": ["X"], "JitterStrategy": "SOME"}, "/States/S/Retry/0/JitterStrategy"),
        ({"ErrorEquals": ["X"], "MaxDelaySeconds": 0}, "/States/S/Retry/0/MaxDelaySeconds"),
        ({"ErrorEquals": ["States.ALL", "X"]}, "/States/S/Retry/0/ErrorEquals"),
        ({"Error Equals": ["X"]}, "/States/S/Retry/0"),
    ],
)
def test_retrier_rules(retrier: dict[str, Any], pointer: str) -> None:
    assert pointer in pointers(retry(retrier))


def test_states_all_must_be_the_last_retrier() -> None:
    definition = retry({"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]})
    assert messages(definition) == ["A Retrier with 'States.ALL' must be the last one"]


def test_catcher_needs_next_and_its_target_must_exist() -> None:
    definition = one(
        {"Type": "Task", "Resource": LAMBDA, "Catch": [{"ErrorEquals": ["X"]}], "End": True}
    )
    assert messages(definition) == ["The field 'Next' is required but was missing"]
    definition["States"]["S"]["Catch"][0]["Next"] = "Gone"
    assert pointers(definition) == ["/States/S/Catch/0/Next"]


def test_catch_targets_make_states_reachable() -> None:
    definition = machine(
        {
            "A": {
                "Type": "Task",
                "Resource": LAMBDA,
                "Catch": [{"ErrorEquals": ["X"], "Next": "B"}],
                "End": True,
            },
            "B": {"Type": "Succeed"},
        }
    )
    parse_definition(definition)


# --------------------------------------------------------------------------- Choice


def choice(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return machine(
        {
            "C": {"Type": "Choice", "Choices": list(rules), "Default": "D", **extra},
            "D": {"Type": "Succeed"},
        }
    )


def test_choice_rules_are_parsed_into_conditions() -> None:
    state = parse_definition(
        choice(
            {"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.m", "Next": "D"},
            {
                "And": [
                    {"Variable": "$.s", "IsPresent": True},
                    {"Not": {"Variable": "$.s", "StringEquals": "x"}},
                ],
                "Next": "D",
            },
        )
    ).state("C")
    assert isinstance(state, ChoiceState)
    first, second = (rule.condition for rule in state.choices)
    assert first == Comparison(
        variable="$.n", operator="NumericGreaterThanEquals", operand="$.m", by_path=True
    )
    assert isinstance(second, And)
    assert isinstance(second.rules[1], Not)


@pytest.mark.parametrize(
    "rule",
    [
        {"Variable": "$.a", "Next": "D"},
        {"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1, "Next": "D"},
        {"StringEquals": "x", "Next": "D"},
        {"And": [], "Next": "D"},
        {"Variable": "$.a", "NumericEquals": "1", "Next": "D"},
        {"Variable": "$.a", "BooleanEquals": "true", "Next": "D"},
        {"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "D"},
        {"Variable": "States.ArrayLength($.a)", "NumericEquals": 1, "Next": "D"},
        {"Variable": "$.a", "StringEquals": "x"},
        {"Variable": "$.a", "StringEquals": "x", "End": True},
        {"Not": {"Variable": "$.a", "IsNull": True, "Next": "D"}, "Next": "D"},
    ],
)
def test_invalid_choice_rules_are_rejected(rule: dict[str, Any]) -> None:
    assert all(p.startswith("/States/C/Choices/0") for p in pointers(choice(rule)))


def test_choices_must_not_be_empty() -> None:
    assert pointers(choice()) == ["/States/C/Choices"]


def test_choice_default_must_exist() -> None:
    definition = choice({"Variable": "$.a", "IsNull": True, "Next": "D"})
    definition["States"]["C"]["Default"] = "Gone"
    assert pointers(definition) == ["/States/C/Default"]


def test_jsonata_choice_rules_use_condition() -> None:
    definition = choice(
        {"Condition": "{% $states.input.a > 1 %}", "Next": "D"}, QueryLanguage="JSONata"
    )
    rule = parse_definition(definition).state("C")
    assert isinstance(rule, ChoiceState)
    assert rule.choices[0].condition == JsonataCondition(condition="{% $states.input.a > 1 %}")


# --------------------------------------------------------------------------- Wait / Fail


def test_wait_needs_exactly_one_duration() -> None:
    assert pointers(one({"Type": "Wait", "End": True})) == ["/States/S"]
    assert pointers(one({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": True})) == [
        "/States/S/SecondsPath"
    ]


def test_wait_timestamp_must_be_rfc3339() -> None:
    for bad in ("2016-13-05T21:29:29Z", "2016-12-05 21:29:29Z", "2016-12-05T21:29:29"):
        assert messages(one({"Type": "Wait", "Timestamp": bad, "End": True})) == [
            "String does not match RFC3339 timestamp"
        ]
    state = parse_definition(
        one({"Type": "Wait", "Timestamp": "2016-03-14T01:59:00.5+02:00", "End": True})
    ).state("S")
    assert isinstance(state, WaitState)
    assert state.timestamp == "2016-03-14T01:59:00.5+02:00"


def test_fail_error_and_error_path_are_exclusive() -> None:
    assert pointers(one({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"})) == [
        "/States/S/ErrorPath"
    ]
    state = parse_definition(one({"Type": "Fail", "ErrorPath": "States.Format('{}', $.e)"})).state(
        "S"
    )
    assert isinstance(state, FailState)
    assert state.error_path == "States.Format('{}', $.e)"


# --------------------------------------------------------------------------- Parallel / Map


def branch(name: str) -> dict[str, Any]:
    return {"StartAt": name, "States": {name: {"Type": "Pass", "End": True}}}


def test_parallel_branches_are_machines_with_their_own_pointers() -> None:
    bad = {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Outside"}}}
    definition = machine(
        {
            "P": {"Type": "Parallel", "Branches": [branch("A"), bad], "Next": "Outside"},
            "Outside": {"Type": "Succeed"},
        }
    )
    assert pointers(definition) == ["/States/P/Branches/1/States/X/Next"]
    definition["States"]["P"]["Branches"][1] = branch("B")
    state = parse_definition(definition).state("P")
    assert isinstance(state, ParallelState)
    assert [b.start_at for b in state.branches] == ["A", "B"]


def test_parallel_needs_branches() -> None:
    assert pointers(one({"Type": "Parallel", "End": True})) == ["/States/S"]
    assert pointers(one({"Type": "Parallel", "Branches": [[branch("A")]], "End": True})) == [
        "/States/S/Branches/0"
    ]


def test_inline_map_with_legacy_iterator() -> None:
    state = parse_definition(
        one(
            {
                "Type": "Map",
                "Iterator": branch("I"),
                "ItemsPath": "$.xs",
                "MaxConcurrency": 2,
                "End": True,
            }
        )
    ).state("S")
    assert isinstance(state, MapState)
    assert (state.mode, state.items_path, state.max_concurrency) == ("INLINE", "$.xs", 2)


def test_distributed_map_reads_its_processor_config() -> None:
    processor = {
        **branch("I"),
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
    }
    state = parse_definition(
        one(
            {
                "Type": "Map",
                "ItemProcessor": processor,
                "Label": "ok",
                "ToleratedFailurePercentage": 5,
                "End": True,
            }
        )
    ).state("S")
    assert isinstance(state, MapState)
    assert (state.mode, state.execution_type, state.label) == ("DISTRIBUTED", "EXPRESS", "ok")


def test_map_needs_a_processor() -> None:
    assert messages(one({"Type": "Map", "End": True})) == [
        "The field 'ItemProcessor' is required but was missing"
    ]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("", "Label cannot be empty"),
        ("x" * 41, "Label cannot exceed 40 characters"),
        ("a:b", "Label contains invalid character: ':'"),
        ("a\x9fb", "Label contains invalid character: '\\x9f'"),
    ],
)
def test_map_label_rules(label: str, message: str) -> None:
    assert messages(
        one({"Type": "Map", "ItemProcessor": branch("I"), "Label": label, "End": True})
    ) == [message]


def test_map_tolerated_failure_rules() -> None:
    definition = one(
        {"Type": "Map", "Iterator": branch("I"), "ToleratedFailurePercentage": 105, "End": True}
    )
    assert pointers(definition) == ["/States/S/ToleratedFailurePercentage"]
    definition = one(
        {
            "Type": "Map",
            "Iterator": branch("I"),
            "ToleratedFailureCount": 1,
            "ToleratedFailureCountPath": "$.n",
            "End": True,
        }
    )
    assert pointers(definition) == ["/States/S/ToleratedFailureCountPath"]


def test_item_reader_max_items_and_its_path_are_exclusive() -> None:
    processor = {
        **branch("I"),
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    }
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"MaxItems": 1, "MaxItemsPath": "$.m"},
    }
    definition = one({"Type": "Map", "ItemProcessor": processor, "ItemReader": reader, "End": True})
    assert pointers(definition) == ["/States/S/ItemReader/ReaderConfig/MaxItemsPath"]


def test_a_state_inside_a_map_cannot_jump_outside_it() -> None:
    inner = {"StartAt": "I", "States": {"I": {"Type": "Pass", "Next": "After"}}}
    definition = machine(
        {"M": {"Type": "Map", "Iterator": inner, "Next": "After"}, "After": {"Type": "Succeed"}}
    )
    assert pointers(definition) == ["/States/M/Iterator/States/I/Next"]


# --------------------------------------------------------------------------- query languages


def test_effective_query_language_is_the_states_own_else_the_machines() -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Output": "{% 1 %}", "Next": "B"},
            "B": {"Type": "Pass", "End": True},
        },
        QueryLanguage="JSONata",
    )
    parsed = parse_definition(definition)
    assert parsed.query_language == JSONATA
    assert [s.query_language for s in parsed.states.values()] == [JSONATA, JSONATA]
    plain = parse_definition(one({"Type": "Pass", "End": True}))
    assert plain.state("S").query_language == JSONPATH


def test_a_jsonpath_machine_may_hold_jsonata_states() -> None:
    state = parse_definition(
        one({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 %}", "End": True})
    ).state("S")
    assert state.query_language == JSONATA
    assert state.output == "{% 1 %}"


def test_a_jsonata_machine_may_not_hold_jsonpath_states() -> None:
    definition = one(
        {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}, QueryLanguage="JSONata"
    )
    assert problems(definition) == [
        Diagnostic(
            "/States/S",
            "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
        )
    ]


def test_nested_states_inherit_the_query_language_of_their_map() -> None:
    inner = {"StartAt": "I", "States": {"I": {"Type": "Pass", "Output": "{% 1 %}", "End": True}}}
    state = parse_definition(
        one({"Type": "Map", "QueryLanguage": "JSONata", "ItemProcessor": inner, "End": True})
    ).state("S")
    assert isinstance(state, MapState)
    assert state.item_processor.state("I").query_language == JSONATA


@pytest.mark.parametrize(
    "field", ["InputPath", "OutputPath", "Parameters", "ResultPath", "ResultSelector"]
)
def test_jsonpath_fields_are_rejected_in_jsonata_states(field: str) -> None:
    value = {"a": 1} if field in ("Parameters", "ResultSelector") else "$.a"
    definition = one(
        {"Type": "Task", "Resource": LAMBDA, field: value, "End": True}, QueryLanguage="JSONata"
    )
    assert pointers(definition) == [f"/States/S/{field}"]


@pytest.mark.parametrize("field", ["Arguments", "Output"])
def test_jsonata_fields_are_rejected_in_jsonpath_states(field: str) -> None:
    definition = one({"Type": "Task", "Resource": LAMBDA, field: {"a": 1}, "End": True})
    assert messages(definition) == [
        f'The field "{field}" is not supported when QueryLanguage is JSONPath'
    ]


def test_jsonata_expressions_must_parse() -> None:
    for bad in ("{% 10 + * 2 %}", "{% $sum($x %}", "{% 10 %", "{%  %}"):
        definition = one(
            {"Type": "Pass", "Output": {"x": [bad]}, "End": True}, QueryLanguage="JSONata"
        )
        assert pointers(definition) == ["/States/S/Output/x/0"], bad


def test_assign_values_are_checked_in_both_languages() -> None:
    assert pointers(one({"Type": "Pass", "Assign": {"v.$": "nope"}, "End": True})) == [
        "/States/S/Assign"
    ]
    definition = one(
        {"Type": "Pass", "Assign": {"v": "{% 420. %}"}, "End": True}, QueryLanguage="JSONata"
    )
    assert pointers(definition) == ["/States/S/Assign/v"]


def test_wrong_types_name_what_was_expected() -> None:
    (message,) = messages(one({"Type": "Pass", "Comment": 5, "End": True}))
    assert message == "The value of the field 'Comment' must be a string, not number"
