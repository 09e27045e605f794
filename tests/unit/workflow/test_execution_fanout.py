"""Map and Parallel in the execution core: concurrency, tolerance, batching, ordering."""

from __future__ import annotations

from typing import Any

import pytest

from dirigent.workflow.signals import ScheduleTask
from tests.unit.workflow.harness import (
    Driver,
    cancels,
    finish,
    machine,
    task_state,
    tasks,
    types,
)

DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}


def map_of_tasks(**fields: Any) -> dict[str, Any]:
    processor: dict[str, Any] = {"StartAt": "Work", "States": {"Work": task_state()}}
    if fields.pop("distributed", False):
        processor["ProcessorConfig"] = DISTRIBUTED
    return machine({"Fan": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}})


def test_max_concurrency_bounds_the_tasks_in_flight() -> None:
    driver = Driver(map_of_tasks(MaxConcurrency=2))
    in_flight: list[ScheduleTask] = tasks(driver.start([10, 20, 30, 40, 50]))
    assert [t.parameters for t in in_flight] == [10, 20]
    most = len(in_flight)
    while in_flight:
        # finish the newest first, so completion order differs from item order
        task = in_flight.pop()
        in_flight += tasks(driver.succeed(task, task.parameters * 2))  # type: ignore[operator]
        most = max(most, len(in_flight))
    assert most == 2
    assert driver.execution.output == [20, 40, 60, 80, 100]


def test_without_max_concurrency_every_iteration_starts_at_once() -> None:
    driver = Driver(map_of_tasks())
    assert len(tasks(driver.start(list(range(7))))) == 7


def test_a_failed_iteration_fails_the_map_and_cancels_the_others() -> None:
    driver = Driver(map_of_tasks())
    first, second, third = tasks(driver.start([1, 2, 3]))
    step = driver.fail(second, "Boom", "bad item")
    assert sorted(cancels(step)) == sorted([first.token, third.token])
    assert "MapIterationFailed" in types(step.events)
    assert (driver.execution.error, driver.execution.cause) == ("Boom", "bad item")
    assert driver.succeed(first, 1).events == []


def test_tolerated_failure_count_lets_the_map_succeed_with_error_results() -> None:
    driver = Driver(map_of_tasks(ToleratedFailureCount=1, distributed=True))
    a, b, c = tasks(driver.start([1, 2, 3]))
    driver.succeed(a, "A")
    driver.fail(b, "Boom", "b failed")
    driver.succeed(c, "C")
    assert driver.execution.status == "SUCCEEDED"
    assert driver.execution.output == ["A", {"Error": "Boom", "Cause": "b failed"}, "C"]


def test_exceeding_tolerated_failure_count_fails_with_exceed_tolerated_failure_threshold() -> None:
    driver = Driver(map_of_tasks(ToleratedFailureCount=1, distributed=True))
    a, b, c = tasks(driver.start([1, 2, 3]))
    driver.fail(a, "Boom")
    step = driver.fail(b, "Boom")
    assert cancels(step) == [c.token]
    assert driver.execution.error == "States.ExceedToleratedFailureThreshold"
    assert driver.execution.cause == "The specified tolerated failure threshold was exceeded"


@pytest.mark.parametrize(("failures", "status"), [(2, "SUCCEEDED"), (3, "FAILED")])
def test_tolerated_failure_percentage_counts_failed_items_against_all(
    failures: int, status: str
) -> None:
    driver = Driver(map_of_tasks(ToleratedFailurePercentage=50, distributed=True))
    scheduled = tasks(driver.start([1, 2, 3, 4]))
    for index, task in enumerate(scheduled):
        if driver.execution.finished:
            break
        if index < failures:
            driver.fail(task, "Boom")
        else:
            driver.succeed(task, index)
    assert driver.execution.status == status


def test_with_both_thresholds_the_map_fails_when_either_is_exceeded() -> None:
    # AWS: "If you specify both values, the workflow fails when it exceeds either value."
    driver = Driver(
        map_of_tasks(ToleratedFailureCount=5, ToleratedFailurePercentage=10, distributed=True)
    )
    scheduled = tasks(driver.start(list(range(10))))
    driver.fail(scheduled[0], "Boom")
    assert driver.execution.status == "RUNNING"  # 10 % is tolerated
    driver.fail(scheduled[1], "Boom")  # 20 % is not, although 2 <= 5
    assert driver.execution.error == "States.ExceedToleratedFailureThreshold"


def test_a_distributed_map_with_no_tolerance_fails_on_the_first_failed_item() -> None:
    driver = Driver(map_of_tasks(distributed=True))
    first, _ = tasks(driver.start([1, 2]))
    driver.fail(first, "Boom")
    assert driver.execution.error == "States.ExceedToleratedFailureThreshold"


def test_item_batcher_groups_items_with_the_batch_input() -> None:
    definition = machine(
        {
            "Fan": {
                "Type": "Map",
                "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"job.$": "$.job"}},
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": DISTRIBUTED,
                    "StartAt": "Echo",
                    "States": {"Echo": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        }
    )
    driver = Driver(definition)
    driver.start({"job": "j-1", "items": [1, 2, 3, 4, 5]})
    assert driver.execution.output == [
        {"job": "j-1", "Items": [1, 2]},
        {"job": "j-1", "Items": [3, 4]},
        {"job": "j-1", "Items": [5]},
    ]


def test_item_selector_sees_the_map_item_index_and_value() -> None:
    definition = machine(
        {
            "Fan": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "index.$": "$$.Map.Item.Index",
                    "value.$": "$$.Map.Item.Value",
                    "batch.$": "$.batch",
                },
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": task_state()},
                },
                "End": True,
            }
        }
    )
    driver = Driver(definition)
    scheduled = tasks(driver.start({"batch": 7, "items": ["a", "b"]}))
    assert [t.parameters for t in scheduled] == [
        {"index": 0, "value": "a", "batch": 7},
        {"index": 1, "value": "b", "batch": 7},
    ]


def test_map_iterations_are_recorded_with_their_index() -> None:
    driver = Driver(map_of_tasks())
    a, b = tasks(driver.start(["x", "y"]))
    driver.succeed(b, 2)
    driver.succeed(a, 1)
    iteration_events = [
        (e.type, e.details["index"]) for e in driver.history if e.type.startswith("MapIteration")
    ]
    assert iteration_events == [
        ("MapIterationStarted", 0),
        ("MapIterationStarted", 1),
        ("MapIterationSucceeded", 1),
        ("MapIterationSucceeded", 0),
    ]
    assert types(driver.history)[-3:] == [
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]


def test_an_empty_map_succeeds_with_an_empty_list() -> None:
    driver = Driver(map_of_tasks())
    driver.start([])
    assert driver.execution.output == []


def parallel_of_tasks(count: int) -> dict[str, Any]:
    branches = [{"StartAt": f"B{i}", "States": {f"B{i}": task_state()}} for i in range(count)]
    return machine({"Both": {"Type": "Parallel", "Branches": branches, "End": True}})


def test_parallel_results_are_in_branch_order_whatever_order_they_finish() -> None:
    driver = Driver(parallel_of_tasks(3))
    a, b, c = tasks(driver.start({"n": 1}))
    assert [t.state_name for t in (a, b, c)] == ["B0", "B1", "B2"]
    assert a.parameters == b.parameters == c.parameters == {"n": 1}
    driver.succeed(c, "third")
    driver.succeed(a, "first")
    assert driver.execution.status == "RUNNING"
    driver.succeed(b, "second")
    assert driver.execution.output == ["first", "second", "third"]


def test_a_failing_branch_cancels_the_tasks_of_its_siblings() -> None:
    driver = Driver(parallel_of_tasks(3))
    a, b, c = tasks(driver.start())
    driver.succeed(a, "done")
    step = driver.fail(b, "Boom", "branch failed")
    assert cancels(step) == [c.token]
    assert "TaskStateAborted" in types(step.events)
    done = finish(step)
    assert done is not None
    assert (done.error, done.cause) == ("Boom", "branch failed")
    assert driver.succeed(c, "late").events == []


def test_a_caught_parallel_failure_moves_on_with_the_error() -> None:
    definition = parallel_of_tasks(2)
    definition["States"]["Both"].pop("End")
    definition["States"]["Both"]["Next"] = "Recover"
    definition["States"]["Both"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}]
    definition["States"]["Recover"] = {"Type": "Pass", "End": True}
    driver = Driver(definition)
    a, b = tasks(driver.start())
    step = driver.fail(a, "Boom", "x")
    assert cancels(step) == [b.token]
    assert driver.execution.output == {"Error": "Boom", "Cause": "x"}
