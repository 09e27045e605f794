"""The in-process driver: mocked responses by invocation index, virtual and real time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dirigent.entropy import SeededEntropy
from dirigent.errors import DefinitionError, InputError
from dirigent.testing.local import run_local

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:work"
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def mocks(responses: dict[str, Any], case: dict[str, str]) -> dict[str, Any]:
    return {
        "StateMachines": {"m": {"TestCases": {"T": case}}},
        "MockedResponses": responses,
    }


def run(definition: dict[str, Any], value: Any, config: dict[str, Any], **kw: Any) -> Any:
    return run_local(
        definition,
        value,
        mock_config=config,
        test_case="T",
        state_machine_name="m",
        entropy=SeededEntropy(1),
        start_time=START,
        **kw,
    )


def test_invocation_indices_count_retries_of_a_state() -> None:
    definition = {
        "StartAt": "Charge",
        "States": {
            "Charge": {
                "Type": "Task",
                "Resource": LAMBDA,
                "Retry": [{"ErrorEquals": ["Busy"], "MaxAttempts": 3, "IntervalSeconds": 1}],
                "End": True,
            }
        },
    }
    config = mocks(
        {
            "R": {
                "0-1": {"Throw": {"Error": "Busy", "Cause": "try later"}},
                "2": {"Return": {"charged": 3}},
            }
        },
        {"Charge": "R"},
    )
    result = run(definition, {}, config)
    assert result.status == "SUCCEEDED"
    assert result.output == {"charged": 3}
    assert [e.type for e in result.history].count("LambdaFunctionFailed") == 2


def test_invocation_indices_count_across_map_iterations() -> None:
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": LAMBDA, "End": True}},
                },
                "End": True,
            }
        },
    }
    config = mocks(
        {"R": {"0": {"Return": "first"}, "1-2": {"Return": "later"}, "3": {"Return": "last"}}},
        {"Work": "R"},
    )
    result = run(definition, [1, 2, 3, 4], config)
    assert result.status == "SUCCEEDED"
    assert result.output == ["first", "later", "later", "last"]


def test_invocation_indices_count_across_map_iterations_with_max_concurrency() -> None:
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": LAMBDA, "End": True}},
                },
                "End": True,
            }
        },
    }
    config = mocks({"R": {"0": {"Return": "a"}, "1": {"Return": "b"}}}, {"Work": "R"})
    assert run(definition, [1, 2], config).output == ["a", "b"]


def test_an_invocation_without_a_mocked_response_fails_the_task_with_a_clear_cause() -> None:
    definition = {
        "StartAt": "Charge",
        "States": {"Charge": {"Type": "Task", "Resource": LAMBDA, "End": True}},
    }
    result = run(definition, {}, mocks({"R": {"1": {"Return": 1}}}, {"Charge": "R"}))
    assert result.status == "FAILED"
    assert result.error == "States.TaskFailed"
    assert "invocation 0" in (result.cause or "")
    assert "'Charge'" in (result.cause or "")


def test_a_mocked_throw_is_the_task_error_and_cause() -> None:
    definition = {
        "StartAt": "Charge",
        "States": {"Charge": {"Type": "Task", "Resource": LAMBDA, "End": True}},
    }
    config = mocks(
        {"R": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "no funds"}}}}, {"Charge": "R"}
    )
    result = run(definition, {}, config)
    assert (result.status, result.error, result.cause) == ("FAILED", "Card.Declined", "no funds")


def test_a_mock_config_without_a_test_case_is_an_input_error() -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    with pytest.raises(InputError, match="test case"):
        run_local(definition, {}, mock_config=mocks({}, {}))


def test_an_invalid_definition_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        run_local({"StartAt": "Nowhere", "States": {}}, {})


def test_python_functions_stand_in_for_lambda_functions() -> None:
    definition = {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Task", "Resource": LAMBDA, "End": True}},
    }
    result = run_local(definition, 21, functions={"work": lambda n: n * 2})
    assert result.output == 42


def test_a_raising_function_fails_the_task_with_its_exception_name() -> None:
    def broken(_: Any) -> Any:
        raise ValueError("bad value")

    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": LAMBDA, "End": True}},
    }
    result = run_local(definition, {}, functions={"work": broken})
    assert result.error == "ValueError"
    assert "bad value" in (result.cause or "")


HOUR_WAIT = {
    "StartAt": "Sleep",
    "States": {
        "Sleep": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
        "Done": {"Type": "Pass", "End": True},
    },
}


def test_virtual_time_fires_an_hour_long_wait_at_once_and_advances_the_history() -> None:
    began = time.monotonic()
    result = run_local(HOUR_WAIT, {}, virtual_time=True, start_time=START)
    assert time.monotonic() - began < 30  # generous: it must not actually wait an hour
    assert result.status == "SUCCEEDED"
    stamps = {e.type: e.timestamp for e in result.history}
    assert stamps["ExecutionStarted"] == START
    assert stamps["WaitStateEntered"] == START
    assert stamps["WaitStateExited"] == START + timedelta(seconds=3600)
    assert stamps["ExecutionSucceeded"] == START + timedelta(seconds=3600)


def test_real_time_really_waits_for_a_short_wait() -> None:
    definition = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 1, "End": True}}}
    began = time.monotonic()
    result = run_local(definition, {}, virtual_time=False, start_time=START)
    assert time.monotonic() - began >= 0.9
    exited = next(e for e in result.history if e.type == "WaitStateExited")
    assert (exited.timestamp - START).total_seconds() >= 0.9
    assert result.status == "SUCCEEDED"


def test_the_json_shape_of_a_run() -> None:
    result = run_local({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, {"a": 1})
    shaped = result.to_json()
    assert set(shaped) == {"status", "output", "error", "cause", "history"}
    assert shaped["status"] == "SUCCEEDED"
    assert shaped["output"] == {"a": 1}
    first = shaped["history"][0]
    assert first["type"] == "ExecutionStarted"
    assert first["id"] == 1
    assert isinstance(first["timestamp"], str)
