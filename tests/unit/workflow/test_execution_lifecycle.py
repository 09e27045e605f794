"""An execution from start to end: timers, stopping, limits, history links and variables."""

from __future__ import annotations

from typing import Any

from dirigent.workflow.history import HistoryEvent
from dirigent.workflow.signals import Stop, TimerFired
from tests.unit.workflow.harness import (
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


def test_a_wait_state_is_a_timer_and_resumes_when_it_fires() -> None:
    driver = Driver(
        machine(
            {"Pause": {"Type": "Wait", "Seconds": 90, "Next": "Done"}, "Done": {"Type": "Succeed"}}
        )
    )
    step = driver.start()
    timer = only(timers(step))
    assert timer.due == T0.replace(minute=1, second=30)
    assert driver.execution.status == "RUNNING"
    step = driver.at(90).send(TimerFired(timer.timer_id))
    assert types(step.events) == [
        "WaitStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]
    assert all(event.timestamp == driver.now for event in step.events)


def test_execution_timeout_seconds_times_the_execution_out() -> None:
    driver = Driver(machine({"Work": task_state()}, TimeoutSeconds=60))
    step = driver.start()
    task = only(tasks(step))
    timer = only(timers(step))
    assert (timer.due - T0).total_seconds() == 60
    step = driver.at(60).send(TimerFired(timer.timer_id))
    assert types(step.events) == ["ExecutionTimedOut"]
    assert cancels(step) == [task.token]
    done = finish(step)
    assert done is not None
    assert (done.status, done.error) == ("TIMED_OUT", "States.Timeout")
    assert driver.execution.status == "TIMED_OUT"
    assert driver.succeed(task, 1).events == []


def test_an_execution_that_ends_in_time_ignores_its_timeout_timer() -> None:
    driver = Driver(machine({"Work": task_state()}, TimeoutSeconds=60))
    step = driver.start()
    driver.at(5).succeed(only(tasks(step)), "ok")
    assert driver.at(60).send(TimerFired(only(timers(step)).timer_id)).events == []
    assert driver.execution.status == "SUCCEEDED"


def test_stop_aborts_the_execution_and_cancels_its_tasks() -> None:
    driver = Driver(machine({"Work": task_state()}))
    task = only(tasks(driver.start()))
    step = driver.at(3).send(Stop(error="Operator", cause="no longer needed"))
    assert types(step.events) == ["ExecutionAborted"]
    assert step.events[0].details == {"error": "Operator", "cause": "no longer needed"}
    assert cancels(step) == [task.token]
    done = finish(step)
    assert done is not None
    assert done.status == "ABORTED"
    assert driver.succeed(task, 1).events == []
    assert driver.send(Stop()).events == []


def test_stop_during_a_wait_leaves_no_timer_to_fire() -> None:
    driver = Driver(machine({"Pause": {"Type": "Wait", "Seconds": 10, "End": True}}))
    timer = only(timers(driver.start()))
    driver.send(Stop())
    assert driver.at(10).send(TimerFired(timer.timer_id)).events == []
    assert driver.execution.status == "ABORTED"


def assert_ids_are_contiguous(history: list[HistoryEvent]) -> None:
    assert [e.id for e in history] == list(range(1, len(history) + 1))
    assert all(0 <= e.previous_event_id < e.id for e in history)


def test_a_sequential_history_chains_each_event_to_the_one_before() -> None:
    definition = machine(
        {
            "A": {"Type": "Pass", "Next": "B"},
            "B": task_state(Next="C"),
            "C": {"Type": "Pass", "End": True},
        }
    )
    driver = Driver(definition)
    driver.succeed(only(tasks(driver.start())), 1)
    history = driver.history
    assert_ids_are_contiguous(history)
    assert [e.previous_event_id for e in history] == [e.id - 1 for e in history]


def test_parallel_branches_each_chain_back_to_the_parallel_start() -> None:
    branches = [
        {"StartAt": "L", "States": {"L": task_state()}},
        {"StartAt": "R", "States": {"R": task_state()}},
    ]
    driver = Driver(machine({"Both": {"Type": "Parallel", "Branches": branches, "End": True}}))
    left, right = tasks(driver.start())
    driver.succeed(right, "r")
    driver.succeed(left, "l")
    history = driver.history
    assert_ids_are_contiguous(history)
    by_id = {e.id: e for e in history}
    started = only([e for e in history if e.type == "ParallelStateStarted"])

    def chain(name: str) -> list[str]:
        entered = only(
            [e for e in history if e.type == "TaskStateEntered" and e.details["name"] == name]
        )
        assert entered.previous_event_id == started.id
        followers = [entered]
        while True:
            nxt = [e for e in history if e.previous_event_id == followers[-1].id]
            nxt = [e for e in nxt if e.type.startswith(("Lambda", "TaskState"))]
            if not nxt:
                return [e.type for e in followers]
            followers.append(only(nxt))

    assert (
        chain("L")
        == chain("R")
        == [
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
        ]
    )
    succeeded = by_id[history[-1].id]
    assert succeeded.type == "ExecutionSucceeded"
    assert by_id[succeeded.previous_event_id].type == "ParallelStateExited"


def test_map_iterations_chain_back_to_their_iteration_start() -> None:
    definition = machine(
        {
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Work", "States": {"Work": task_state()}},
                "End": True,
            }
        }
    )
    driver = Driver(definition)
    a, b = tasks(driver.start([1, 2]))
    driver.succeed(b, 2)
    driver.succeed(a, 1)
    history = driver.history
    assert_ids_are_contiguous(history)
    by_id = {e.id: e for e in history}
    for entered in (e for e in history if e.type == "TaskStateEntered"):
        parent = by_id[entered.previous_event_id]
        assert parent.type == "MapIterationStarted"


def test_ids_stay_contiguous_across_many_steps() -> None:
    definition = machine(
        {"Work": task_state(Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}])}
    )
    driver = Driver(definition)
    task = only(tasks(driver.start()))
    for second in (1, 3, 7):
        timer = only(timers(driver.fail(task, "Flaky")))
        task = only(tasks(driver.at(second).send(TimerFired(timer.timer_id))))
    driver.succeed(task, "finally")
    assert_ids_are_contiguous(driver.history)
    assert types(driver.history).count("LambdaFunctionScheduled") == 4


def test_assigned_variables_are_visible_to_later_states() -> None:
    definition = machine(
        {
            "Remember": {"Type": "Pass", "Assign": {"customer.$": "$.who"}, "Next": "Use"},
            "Use": {
                "Type": "Pass",
                "Parameters": {"greeting.$": "States.Format('hi {}', $customer)"},
                "End": True,
            },
        }
    )
    driver = Driver(definition)
    step = driver.start({"who": "ada"})
    exited = only(
        [e for e in step.events if e.type == "PassStateExited" and e.details["name"] == "Remember"]
    )
    assert exited.details["assignedVariables"] == {"customer": '"ada"'}
    assert driver.execution.output == {"greeting": "hi ada"}


def test_variables_assigned_inside_a_map_iteration_do_not_leak_out() -> None:
    definition: dict[str, Any] = machine(
        {
            "Init": {"Type": "Pass", "Assign": {"total": 0}, "Next": "Fan"},
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Keep",
                    "States": {
                        "Keep": {
                            "Type": "Pass",
                            "Assign": {"inner": "{% $states.input %}"},
                            "Next": "Show",
                        },
                        "Show": {
                            "Type": "Pass",
                            "Output": {"item": "{% $inner %}", "outer": "{% $total %}"},
                            "End": True,
                        },
                    },
                },
                "Next": "After",
            },
            "After": {
                "Type": "Pass",
                "Output": {
                    "results": "{% $states.input %}",
                    "total": "{% $total %}",
                    "inner": "{% $exists($inner) %}",
                },
                "End": True,
            },
        },
        QueryLanguage="JSONata",
    )
    driver = Driver(definition)
    driver.start([5, 6])
    assert driver.execution.status == "SUCCEEDED", driver.execution.cause
    assert driver.execution.output == {
        "results": [{"item": 5, "outer": 0}, {"item": 6, "outer": 0}],
        "total": 0,
        "inner": False,
    }


def test_an_input_over_256_kib_fails_with_data_limit_exceeded() -> None:
    driver = Driver(machine({"Work": task_state()}))
    step = driver.start({"blob": "z" * (256 * 1024)})
    assert tasks(step) == []
    assert types(step.events) == ["ExecutionStarted", "ExecutionFailed"]
    assert driver.execution.error == "States.DataLimitExceeded"


def test_signals_after_the_end_change_nothing() -> None:
    driver = Driver(machine({"Done": {"Type": "Succeed"}}))
    driver.start()
    count = len(driver.history)
    assert driver.start().events == []
    assert driver.send(Stop()).events == []
    assert len(driver.history) == count
    assert driver.execution.status == "SUCCEEDED"


def test_an_execution_whose_history_reaches_the_limit_fails_with_states_runtime() -> None:
    from dirigent.workflow.execution import Execution

    loop = machine(
        {
            "Again": {"Type": "Wait", "Seconds": 1, "Next": "Check"},
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Again",
            },
            "Done": {"Type": "Succeed"},
        }
    )
    driver = Driver(loop)
    driver.execution = Execution(
        driver.execution.machine,
        driver.execution.info,
        entropy=driver.execution.entropy,
        history_limit=20,
    )
    step = driver.start({})
    while finish(step) is None:
        step = driver.send(TimerFired(only(timers(step)).timer_id))
    done = finish(step)
    assert done is not None
    assert (done.status, done.error) == ("FAILED", "States.Runtime")
    assert "maximum number of history events (20)" in (done.cause or "")
    assert 20 <= driver.execution.event_count <= 23
