"""Retry timing and Catch routing in the execution core, seen as timers and events."""

from __future__ import annotations

import json
from typing import Any

from dirigent.workflow.signals import TimerFired
from tests.unit.workflow.harness import (
    T0,
    Driver,
    FixedEntropy,
    finish,
    machine,
    only,
    task_state,
    tasks,
    timers,
    types,
)


def retry_delays(retrier: dict[str, Any], failures: int, entropy: Any = None) -> list[float]:
    """Fail the task ``failures`` times; the delay before each retry, in seconds."""
    driver = Driver(machine({"Work": task_state(Retry=[retrier])}), entropy=entropy)
    task = only(tasks(driver.start()))
    delays = []
    for _ in range(failures):
        step = driver.fail(task, "Flaky")
        timer = only(timers(step))
        delays.append((timer.due - driver.now).total_seconds())
        task = only(
            tasks(driver.at((timer.due - T0).total_seconds()).send(TimerFired(timer.timer_id)))
        )
    return delays


def test_retries_wait_interval_seconds_times_backoff_rate_to_the_attempt() -> None:
    retrier = {"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4}
    assert retry_delays(retrier, 4) == [2.0, 6.0, 18.0, 54.0]


def test_retry_defaults_are_one_second_doubling_three_times() -> None:
    assert retry_delays({"ErrorEquals": ["Flaky"]}, 3) == [1.0, 2.0, 4.0]


def test_max_delay_seconds_caps_the_backoff() -> None:
    retrier = {
        "ErrorEquals": ["Flaky"],
        "IntervalSeconds": 10,
        "BackoffRate": 4,
        "MaxAttempts": 4,
        "MaxDelaySeconds": 100,
    }
    assert retry_delays(retrier, 4) == [10.0, 40.0, 100.0, 100.0]


def test_full_jitter_scales_each_delay_by_the_injected_random_number() -> None:
    retrier = {
        "ErrorEquals": ["Flaky"],
        "IntervalSeconds": 8,
        "BackoffRate": 2,
        "MaxAttempts": 3,
        "JitterStrategy": "FULL",
    }
    entropy = FixedEntropy(0.25)
    assert retry_delays(retrier, 3, entropy) == [2.0, 4.0, 8.0]
    assert entropy.draws >= 3


def test_full_jitter_applies_after_max_delay_seconds() -> None:
    retrier = {
        "ErrorEquals": ["Flaky"],
        "IntervalSeconds": 100,
        "MaxDelaySeconds": 50,
        "MaxAttempts": 1,
        "JitterStrategy": "FULL",
    }
    assert retry_delays(retrier, 1, FixedEntropy(0.5)) == [25.0]


def test_when_retries_run_out_the_execution_fails_with_the_task_error() -> None:
    driver = Driver(
        machine({"Work": task_state(Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 1}])})
    )
    task = only(tasks(driver.start()))
    timer = only(timers(driver.fail(task, "Flaky")))
    task = only(tasks(driver.at(1).send(TimerFired(timer.timer_id))))
    step = driver.at(2).fail(task, "Flaky", "still broken")
    assert timers(step) == []
    done = finish(step)
    assert done is not None
    assert (done.status, done.error, done.cause) == ("FAILED", "Flaky", "still broken")


def test_max_attempts_zero_never_retries() -> None:
    driver = Driver(
        machine({"Work": task_state(Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 0}])})
    )
    step = driver.fail(only(tasks(driver.start())), "Flaky")
    assert timers(step) == []
    assert driver.execution.status == "FAILED"


def test_each_retrier_counts_its_own_attempts() -> None:
    retry = [
        {"ErrorEquals": ["A"], "MaxAttempts": 1, "IntervalSeconds": 1},
        {"ErrorEquals": ["B"], "MaxAttempts": 1, "IntervalSeconds": 5},
    ]
    driver = Driver(machine({"Work": task_state(Retry=retry)}))
    task = only(tasks(driver.start()))
    first = only(timers(driver.fail(task, "A")))
    assert (first.due - driver.now).total_seconds() == 1
    task = only(tasks(driver.at(1).send(TimerFired(first.timer_id))))
    second = only(timers(driver.fail(task, "B")))
    assert (second.due - driver.now).total_seconds() == 5
    task = only(tasks(driver.at(6).send(TimerFired(second.timer_id))))
    driver.fail(task, "A")
    assert driver.execution.status == "FAILED"


def test_parameters_see_the_retry_count_of_each_attempt() -> None:
    definition = machine(
        {
            "Work": task_state(
                Parameters={"retry.$": "$$.State.RetryCount"},
                Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
            )
        }
    )
    driver = Driver(definition)
    task = only(tasks(driver.start()))
    seen = [task.parameters]
    for second in (1, 3):
        timer = only(timers(driver.fail(task, "Flaky")))
        task = only(tasks(driver.at(second).send(TimerFired(timer.timer_id))))
        seen.append(task.parameters)
    # Parameters are evaluated afresh for every attempt, as AWS records them.
    assert seen == [{"retry": 0}, {"retry": 1}, {"retry": 2}]


def test_catch_with_result_path_keeps_the_input_and_adds_the_error() -> None:
    definition = machine(
        {
            "Work": task_state(
                Catch=[{"ErrorEquals": ["Boom"], "ResultPath": "$.problem", "Next": "Handle"}]
            ),
            "Handle": {"Type": "Pass", "End": True},
        }
    )
    driver = Driver(definition)
    step = driver.fail(only(tasks(driver.start({"order": 1}))), "Boom", "it broke")
    assert types(step.events) == [
        "LambdaFunctionFailed",
        "TaskStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert driver.execution.output == {
        "order": 1,
        "problem": {"Error": "Boom", "Cause": "it broke"},
    }


def test_catch_without_result_path_replaces_the_input_with_the_error() -> None:
    definition = machine(
        {
            "Work": task_state(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handle"}]),
            "Handle": {"Type": "Pass", "End": True},
        }
    )
    driver = Driver(definition)
    driver.fail(only(tasks(driver.start({"order": 1}))), "Boom", "it broke")
    assert driver.execution.output == {"Error": "Boom", "Cause": "it broke"}


def test_the_first_matching_catcher_chooses_the_next_state() -> None:
    definition = machine(
        {
            "Work": task_state(
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "Right"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
                ]
            ),
            "Wrong": {"Type": "Fail", "Error": "wrong"},
            "Right": {"Type": "Succeed"},
        }
    )
    driver = Driver(definition)
    driver.fail(only(tasks(driver.start())), "Boom")
    assert driver.execution.status == "SUCCEEDED"


def test_catch_with_jsonata_output_and_assign() -> None:
    definition = machine(
        {
            "Work": task_state(
                Catch=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "Output": {
                            "failed": "{% $states.errorOutput.Error %}",
                            "order": "{% $states.input.order %}",
                        },
                        "Assign": {"why": "{% $states.errorOutput.Cause %}"},
                        "Next": "Handle",
                    }
                ]
            ),
            "Handle": {
                "Type": "Pass",
                "Output": {"seen": "{% $why %}", "in": "{% $states.input %}"},
                "End": True,
            },
        },
        QueryLanguage="JSONata",
    )
    driver = Driver(definition)
    step = driver.fail(only(tasks(driver.start({"order": 9}))), "Boom", "disk full")
    exited = step.events[1]
    assert exited.type == "TaskStateExited"
    assert json.loads(exited.details["assignedVariables"]["why"]) == "disk full"
    assert driver.execution.output == {
        "seen": "disk full",
        "in": {"failed": "Boom", "order": 9},
    }


def test_retry_is_tried_before_catch() -> None:
    definition = machine(
        {
            "Work": task_state(
                Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}],
                Catch=[{"ErrorEquals": ["Boom"], "Next": "Handle"}],
            ),
            "Handle": {"Type": "Pass", "Result": "caught", "End": True},
        }
    )
    driver = Driver(definition)
    step = driver.fail(only(tasks(driver.start())), "Boom")
    assert driver.execution.status == "RUNNING"
    task = only(tasks(driver.at(1).send(TimerFired(only(timers(step)).timer_id))))
    driver.fail(task, "Boom")
    assert driver.execution.output == "caught"


def test_states_runtime_is_neither_retried_nor_caught() -> None:
    definition = machine(
        {
            "Work": task_state(
                Parameters={"x.$": "$.missing"},
                Retry=[{"ErrorEquals": ["States.ALL"]}],
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
            ),
            "Handle": {"Type": "Succeed"},
        }
    )
    driver = Driver(definition)
    step = driver.start({})
    assert timers(step) == []
    assert tasks(step) == []
    assert driver.execution.error == "States.Runtime"
