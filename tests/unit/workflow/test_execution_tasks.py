"""Task states in the execution core: scheduling, tokens, timeouts and heartbeats."""

from __future__ import annotations

import json

from dirigent.workflow.signals import TaskHeartbeat, TaskStarted, TimerFired
from tests.unit.workflow.harness import (
    ACTIVITY,
    EXECUTION_ARN,
    LAMBDA,
    T0,
    Driver,
    cancels,
    finish,
    machine,
    only,
    task_state,
    tasks,
    timers,
    types,
)


def test_a_task_is_scheduled_with_its_parameters_and_recorded() -> None:
    driver = Driver(machine({"Charge": task_state(Parameters={"amount.$": "$.total"})}))
    step = driver.start({"total": 42})
    task = only(tasks(step))
    assert (task.state_name, task.resource, task.kind) == ("Charge", LAMBDA, "lambda")
    assert task.parameters == {"amount": 42}
    assert task.attempt == 0
    assert types(step.events) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
    ]
    scheduled = step.events[-1].details
    assert scheduled["resource"] == LAMBDA
    assert json.loads(scheduled["input"]) == {"amount": 42}
    assert driver.execution.status == "RUNNING"


def test_a_task_result_flows_through_result_path_to_the_output() -> None:
    driver = Driver(machine({"Charge": task_state(ResultPath="$.receipt")}))
    task = only(tasks(driver.start({"order": 7})))
    assert types(driver.send(TaskStarted(task.token)).events) == ["LambdaFunctionStarted"]
    step = driver.succeed(task, {"id": "r-1"})
    assert types(step.events) == [
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert finish(step) is not None
    assert driver.execution.output == {"order": 7, "receipt": {"id": "r-1"}}


def test_the_idempotency_key_names_execution_state_entry_and_attempt() -> None:
    driver = Driver(
        machine({"Charge": task_state(Retry=[{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1}])})
    )
    first = only(tasks(driver.start()))
    entered = driver.history[1]
    assert entered.type == "TaskStateEntered"
    assert first.idempotency_key == f"{EXECUTION_ARN}/Charge/{entered.id}/0"
    retry_timer = only(timers(driver.fail(first, "Flaky")))
    second = only(tasks(driver.at(1).send(TimerFired(retry_timer.timer_id))))
    assert second.attempt == 1
    assert second.idempotency_key == f"{EXECUTION_ARN}/Charge/{entered.id}/1"
    assert second.token != first.token


def test_idempotency_keys_differ_between_entries_of_the_same_state() -> None:
    definition = machine(
        {
            "Work": task_state(Next="Again"),
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.done", "BooleanEquals": False, "Next": "Work"}],
                "Default": "End",
            },
            "End": {"Type": "Succeed"},
        }
    )
    driver = Driver(definition)
    first = only(tasks(driver.start()))
    second = only(tasks(driver.succeed(first, {"done": False})))
    assert second.state_name == first.state_name == "Work"
    assert second.idempotency_key != first.idempotency_key


def test_wait_for_task_token_exposes_the_token_to_parameters() -> None:
    resource = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    driver = Driver(
        machine(
            {
                "Ask": task_state(
                    Resource=resource,
                    Parameters={"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
                )
            }
        )
    )
    step = driver.start()
    task = only(tasks(step))
    assert task.wait_for_token
    assert task.parameters == {"QueueUrl": "q", "MessageBody": {"token": task.token}}
    assert types(step.events)[-1] == "TaskScheduled"
    assert driver.succeed(task, {"approved": True}).events[-1].type == "ExecutionSucceeded"
    assert driver.execution.output == {"approved": True}


def test_wait_for_task_token_gets_a_fresh_token_on_each_attempt() -> None:
    resource = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    driver = Driver(
        machine(
            {
                "Ask": task_state(
                    Resource=resource,
                    Parameters={"token.$": "$$.Task.Token"},
                    Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}],
                )
            }
        )
    )
    first = only(tasks(driver.start()))
    timer = only(timers(driver.fail(first, "Nope")))
    second = only(tasks(driver.at(1).send(TimerFired(timer.timer_id))))
    assert second.parameters == {"token": second.token}
    assert second.token != first.token


def test_a_task_without_a_token_sees_no_task_token_in_the_context() -> None:
    driver = Driver(machine({"Work": task_state(Parameters={"token.$": "$$.Task.Token"})}))
    step = driver.start()
    assert tasks(step) == []
    assert driver.execution.error == "States.Runtime"


def test_timeout_and_heartbeat_become_timers_due_after_their_seconds() -> None:
    driver = Driver(
        machine({"Review": task_state(Resource=ACTIVITY, TimeoutSeconds=300, HeartbeatSeconds=60)})
    )
    step = driver.start()
    task = only(tasks(step))
    assert (task.timeout_seconds, task.heartbeat_seconds) == (300, 60)
    assert sorted((t.due - T0).total_seconds() for t in timers(step)) == [60.0, 300.0]
    scheduled = step.events[-1]
    assert scheduled.type == "ActivityScheduled"
    assert scheduled.details["timeoutInSeconds"] == 300
    assert scheduled.details["heartbeatInSeconds"] == 60


def test_a_fired_timeout_fails_the_task_with_states_timeout_and_cancels_it() -> None:
    driver = Driver(machine({"Work": task_state(TimeoutSeconds=10)}))
    step = driver.start()
    task = only(tasks(step))
    timeout = only(timers(step))
    step = driver.at(10).send(TimerFired(timeout.timer_id))
    assert types(step.events) == ["LambdaFunctionTimedOut", "ExecutionFailed"]
    assert step.events[0].details["error"] == "States.Timeout"
    assert cancels(step) == [task.token]
    done = finish(step)
    assert done is not None
    assert (done.status, done.error) == ("FAILED", "States.Timeout")


def test_a_late_result_after_a_timeout_is_ignored() -> None:
    definition = machine(
        {
            "Work": task_state(
                TimeoutSeconds=10,
                Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Slow"}],
            ),
            "Slow": {"Type": "Pass", "Result": "timed out", "End": True},
        }
    )
    driver = Driver(definition)
    step = driver.start()
    task = only(tasks(step))
    driver.at(10).send(TimerFired(only(timers(step)).timer_id))
    assert driver.execution.output == "timed out"
    count = len(driver.history)
    late = driver.at(11).succeed(task, "too late")
    assert late.events == []
    assert late.commands == []
    assert len(driver.history) == count


def test_a_late_result_while_a_caught_timeout_moves_on_is_ignored() -> None:
    definition = machine(
        {
            "Work": task_state(
                TimeoutSeconds=10,
                Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Again"}],
            ),
            "Again": task_state(),
        }
    )
    driver = Driver(definition)
    step = driver.start()
    first = only(tasks(step))
    second = only(tasks(driver.at(10).send(TimerFired(only(timers(step)).timer_id))))
    assert driver.succeed(first, "stale").events == []
    driver.succeed(second, "fresh")
    assert driver.execution.output == "fresh"


def test_a_missed_heartbeat_fails_the_task_with_states_heartbeat_timeout() -> None:
    driver = Driver(machine({"Review": task_state(Resource=ACTIVITY, HeartbeatSeconds=30)}))
    step = driver.start()
    heartbeat = only(timers(step))
    step = driver.at(30).send(TimerFired(heartbeat.timer_id))
    assert types(step.events) == ["ActivityTimedOut", "ExecutionFailed"]
    assert driver.execution.error == "States.HeartbeatTimeout"


def test_a_heartbeat_rearms_the_heartbeat_timer_from_now() -> None:
    driver = Driver(machine({"Review": task_state(Resource=ACTIVITY, HeartbeatSeconds=30)}))
    step = driver.start()
    task = only(tasks(step))
    old = only(timers(step))
    beat = driver.at(20).send(TaskHeartbeat(task.token))
    new = only(timers(beat))
    assert new.timer_id != old.timer_id
    assert (new.due - T0).total_seconds() == 50
    # the superseded timer no longer counts
    assert driver.at(30).send(TimerFired(old.timer_id)).events == []
    assert driver.execution.status == "RUNNING"
    driver.at(40).succeed(task, "reviewed")
    assert driver.execution.status == "SUCCEEDED"
    # and the re-armed one is gone with the task
    assert driver.at(50).send(TimerFired(new.timer_id)).events == []


def test_a_timer_of_a_finished_task_is_ignored() -> None:
    driver = Driver(
        machine({"Work": task_state(TimeoutSeconds=10, Next="Next"), "Next": task_state()})
    )
    step = driver.start()
    timeout = only(timers(step))
    driver.at(1).succeed(only(tasks(step)), 1)
    assert driver.at(10).send(TimerFired(timeout.timer_id)).events == []
    assert driver.execution.status == "RUNNING"


def test_a_task_result_over_256_kib_fails_with_data_limit_exceeded() -> None:
    driver = Driver(machine({"Work": task_state()}))
    task = only(tasks(driver.start()))
    step = driver.succeed(task, "x" * (256 * 1024))
    assert driver.execution.status == "FAILED"
    assert driver.execution.error == "States.DataLimitExceeded"
    assert types(step.events)[-1] == "ExecutionFailed"


def test_a_task_result_just_under_256_kib_is_accepted() -> None:
    driver = Driver(machine({"Work": task_state()}))
    task = only(tasks(driver.start()))
    driver.succeed(task, "x" * (256 * 1024 - 10))
    assert driver.execution.status == "SUCCEEDED"


def test_a_state_output_over_256_kib_fails_with_data_limit_exceeded() -> None:
    blob = "y" * (200 * 1024)
    definition = machine(
        {"Grow": {"Type": "Pass", "Parameters": {"a.$": "$.blob", "b.$": "$.blob"}, "End": True}}
    )
    driver = Driver(definition)
    driver.start({"blob": blob})
    assert driver.execution.error == "States.DataLimitExceeded"
