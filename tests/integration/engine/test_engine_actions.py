"""The engine's actions on a real store of each kind, driven step by step."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dirigent.engine import Engine, EngineSettings, FunctionRegistry, InvocationContext
from dirigent.engine import errors as aws
from dirigent.store import open_store

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:"
SEEN_KEYS: list[str] = []


def _flaky_once(event: Any, context: InvocationContext) -> Any:
    SEEN_KEYS.append(context.idempotency_key)
    if context.attempt == 0:
        raise ConnectionError("first try fails")
    return {"ok": event}


def _exits(_event: Any) -> Any:
    raise SystemExit(3)


def _cycle(_event: Any) -> Any:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    return looped


FUNCTIONS = {"echo": lambda event: event, "flaky_once": _flaky_once, "exits": _exits,
             "cycle": _cycle}  # fmt: skip


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    store = open_store(store_url)
    built = Engine(
        store,
        settings=EngineSettings(activity_poll_seconds=0.5),
        functions=FunctionRegistry(FUNCTIONS),
    )
    yield built
    built.worker.stop()
    store.close()


def machine(engine: Engine, definition: dict[str, Any], name: str = "m") -> str:
    arn: str = engine.catalog.create_state_machine(
        {"name": name, "definition": json.dumps(definition), "roleArn": "arn:aws:iam::1:role/r"}
    )["stateMachineArn"]
    return arn


def run(engine: Engine, arn: str, value: Any = None, name: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"stateMachineArn": arn, "input": json.dumps(value or {})}
    if name:
        request["name"] = name
    execution = engine.executions.start_execution(request)["executionArn"]
    engine.run_until_idle()
    return engine.executions.describe_execution({"executionArn": execution})


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def _stored_counts(engine: Engine) -> tuple[int, int]:
    with engine.store.transaction() as tx:
        machines = len(tx.list_machines(None, 1000))
        executions = len(tx.list_executions(machine_arn=None, status=None, before=None, limit=1000))
    return machines, executions


def test_start_with_the_same_name_and_input_returns_the_running_execution(engine: Engine) -> None:
    arn = machine(
        engine, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
    )
    first = engine.executions.start_execution(
        {"stateMachineArn": arn, "name": "once", "input": '{"a": 1}'}
    )
    again = engine.executions.start_execution(
        {"stateMachineArn": arn, "name": "once", "input": '{"a":1}'}
    )
    assert again["executionArn"] == first["executionArn"]
    with pytest.raises(aws.ExecutionAlreadyExists):
        engine.executions.start_execution(
            {"stateMachineArn": arn, "name": "once", "input": '{"a": 2}'}
        )


def test_a_task_retried_after_a_failure_gets_a_new_idempotency_key_per_attempt(
    engine: Engine,
) -> None:
    SEEN_KEYS.clear()
    arn = machine(
        engine,
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": LAMBDA + "flaky_once",
                    "Retry": [
                        {
                            "ErrorEquals": ["ConnectionError"],
                            "IntervalSeconds": 1,
                            "BackoffRate": 1.0,
                        }
                    ],
                    "End": True,
                }
            },
        },
    )
    execution = engine.executions.start_execution({"stateMachineArn": arn, "input": "7"})
    engine.run_until_idle()
    engine.clock = engine.worker.clock = lambda: 10**10  # the retry timer is due
    engine.run_until_idle()
    described = engine.executions.describe_execution(execution)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"ok": 7}
    assert len(SEEN_KEYS) == 2
    assert SEEN_KEYS[0] != SEEN_KEYS[1]
    assert SEEN_KEYS[0].startswith(execution["executionArn"])


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"stateMachineArn": "not-an-arn"}, aws.InvalidArn),
        (
            {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:none"},
            aws.StateMachineDoesNotExist,
        ),
        ({"input": "{not json"}, aws.InvalidExecutionInput),
        ({"input": json.dumps({"x": "y" * (256 * 1024)})}, aws.InvalidExecutionInput),
        ({"name": "has space"}, aws.InvalidName),
    ],
)
def test_bad_start_requests_get_aws_errors_and_store_nothing(
    engine: Engine, request_body: dict[str, Any], error: type[Exception]
) -> None:
    arn = machine(engine, PASS)
    before = _stored_counts(engine)
    with pytest.raises(error):
        engine.executions.start_execution({"stateMachineArn": arn, **request_body})
    assert _stored_counts(engine) == before


def test_an_invalid_definition_is_rejected_and_nothing_is_created(engine: Engine) -> None:
    with pytest.raises(aws.InvalidDefinition, match="StartAt"):
        engine.catalog.create_state_machine(
            {"name": "bad", "definition": '{"States": {}}', "roleArn": "arn:r"}
        )
    assert _stored_counts(engine) == (0, 0)


def test_an_unknown_task_token_gets_task_does_not_exist(engine: Engine) -> None:
    with pytest.raises(aws.TaskDoesNotExist):
        engine.executions.send_task_success({"taskToken": "nope", "output": "{}"})
    with pytest.raises(aws.InvalidToken):
        engine.executions.send_task_success({"taskToken": "", "output": "{}"})


def test_an_activity_worker_takes_the_task_and_answers_it(engine: Engine) -> None:
    activity = engine.catalog.create_activity({"name": "review"})["activityArn"]
    arn = machine(
        engine,
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": activity, "End": True}}},
    )
    execution = engine.executions.start_execution({"stateMachineArn": arn, "input": '{"n": 1}'})
    engine.run_until_idle()
    task = engine.get_activity_task({"activityArn": activity, "workerName": "w1"})
    assert json.loads(task["input"]) == {"n": 1}
    engine.executions.send_task_heartbeat({"taskToken": task["taskToken"]})
    engine.executions.send_task_success({"taskToken": task["taskToken"], "output": '"done"'})
    engine.run_until_idle()
    described = engine.executions.describe_execution(execution)
    assert (described["status"], described["output"]) == ("SUCCEEDED", '"done"')
    history = engine.executions.get_execution_history(execution)["events"]
    started = [e for e in history if e["type"] == "ActivityStarted"]
    assert started[0]["activityStartedEventDetails"] == {"workerName": "w1"}
    assert engine.get_activity_task({"activityArn": activity}) == {}


def test_a_wait_for_task_token_callback_completes_the_task(engine: Engine) -> None:
    arn = machine(
        engine,
        {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "echo", "Payload": {"token.$": "$$.Task.Token"}},
                    "End": True,
                }
            },
        },
    )
    execution = engine.executions.start_execution({"stateMachineArn": arn})
    engine.run_until_idle()
    assert engine.executions.describe_execution(execution)["status"] == "RUNNING"
    events = engine.executions.get_execution_history(execution)["events"]
    scheduled = next(e for e in events if e["type"] == "TaskScheduled")
    token = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]["token"]
    engine.executions.send_task_failure(
        {"taskToken": token, "error": "Review.Rejected", "cause": "no"}
    )
    engine.run_until_idle()
    described = engine.executions.describe_execution(execution)
    assert (described["status"], described["error"]) == ("FAILED", "Review.Rejected")
    with pytest.raises(aws.TaskDoesNotExist):
        engine.executions.send_task_success({"taskToken": token, "output": "{}"})


def test_a_sync_child_execution_returns_its_output_to_the_parent(engine: Engine) -> None:
    child = machine(
        engine,
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"child": True}, "End": True}}},
        name="child",
    )
    parent = machine(
        engine,
        {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync:2",
                    "Parameters": {"StateMachineArn": child, "Input": {"from": "parent"}},
                    "OutputPath": "$.Output",
                    "End": True,
                }
            },
        },
        name="parent",
    )
    described = run(engine, parent)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"child": True}


def test_stop_aborts_a_running_execution_at_once(engine: Engine) -> None:
    arn = machine(
        engine, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600, "End": True}}}
    )
    execution = engine.executions.start_execution({"stateMachineArn": arn})
    engine.run_until_idle()
    engine.executions.stop_execution({**execution, "error": "Ops", "cause": "by hand"})
    described = engine.executions.describe_execution(execution)
    assert (described["status"], described["error"]) == ("ABORTED", "Ops")


def test_redrive_resumes_from_the_failed_state_without_rerunning_earlier_ones(
    engine: Engine,
) -> None:
    arn = machine(
        engine,
        {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Result": 1, "ResultPath": "$.first", "Next": "Check"},
                "Check": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.fixed", "IsPresent": True, "Next": "Done"}],
                    "Default": "Boom",
                },
                "Boom": {"Type": "Fail", "Error": "Broken"},
                "Done": {"Type": "Succeed"},
            },
        },
    )
    described = run(engine, arn)
    assert described["status"] == "FAILED"
    assert described["redriveStatus"] == "REDRIVABLE"
    engine.executions.redrive_execution({"executionArn": described["executionArn"]})
    engine.run_until_idle()
    again = engine.executions.describe_execution({"executionArn": described["executionArn"]})
    assert again["status"] == "FAILED"  # Fail states fail again, as on AWS
    assert again["redriveCount"] == 1
    events = engine.executions.get_execution_history({"executionArn": described["executionArn"]})[
        "events"
    ]
    assert [e["type"] for e in events].count("PassStateEntered") == 1
    assert "ExecutionRedriven" in [e["type"] for e in events]


def test_history_pages_forward_and_in_reverse(engine: Engine) -> None:
    chain = {
        "StartAt": "S0",
        "States": {
            f"S{i}": {"Type": "Pass", **({"Next": f"S{i + 1}"} if i < 9 else {"End": True})}
            for i in range(10)
        },
    }
    described = run(engine, machine(engine, chain))
    request = {"executionArn": described["executionArn"], "maxResults": 7}
    ids: list[int] = []
    token = None
    while True:
        page = engine.executions.get_execution_history(
            {**request, **({"nextToken": token} if token else {})}
        )
        ids.extend(e["id"] for e in page["events"])
        token = page.get("nextToken")
        if token is None:
            break
    assert ids == list(range(1, 23))
    reverse = engine.executions.get_execution_history({**request, "reverseOrder": True})
    assert [e["id"] for e in reverse["events"]] == list(range(22, 15, -1))


def test_versions_and_aliases_route_executions(engine: Engine) -> None:
    arn = machine(
        engine, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v1", "End": True}}}
    )
    v1 = engine.catalog.publish_state_machine_version({"stateMachineArn": arn})[
        "stateMachineVersionArn"
    ]
    engine.catalog.update_state_machine(
        {
            "stateMachineArn": arn,
            "definition": json.dumps(
                {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "v2", "End": True}}}
            ),
        }
    )
    alias = engine.catalog.create_state_machine_alias(
        {"name": "live", "routingConfiguration": [{"stateMachineVersionArn": v1, "weight": 100}]}
    )
    assert json.loads(run(engine, arn)["output"]) == "v2"
    assert json.loads(run(engine, v1)["output"]) == "v1"
    via_alias = run(engine, alias["stateMachineAliasArn"])
    assert json.loads(via_alias["output"]) == "v1"
    assert via_alias["stateMachineAliasArn"] == alias["stateMachineAliasArn"]


def test_list_executions_pages_without_gaps_or_repeats(engine: Engine) -> None:
    arn = machine(engine, PASS)
    for n in range(25):
        engine.executions.start_execution({"stateMachineArn": arn, "name": f"e{n}"})
    seen: list[str] = []
    token = None
    while True:
        page = engine.executions.list_executions(
            {"stateMachineArn": arn, "maxResults": 10, **({"nextToken": token} if token else {})}
        )
        seen.extend(e["name"] for e in page["executions"])
        token = page.get("nextToken")
        if token is None:
            break
    assert sorted(seen) == sorted(f"e{n}" for n in range(25))


def test_the_worker_thread_runs_executions_started_from_other_threads(engine: Engine) -> None:
    arn = machine(
        engine,
        {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": LAMBDA + "echo", "End": True}},
        },
    )
    engine.start()
    done = threading.Event()
    results: list[str] = []

    def client() -> None:
        results.extend(
            engine.executions.start_execution({"stateMachineArn": arn, "input": str(n)})[
                "executionArn"
            ]
            for n in range(20)
        )
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    thread.join(30)
    assert done.is_set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = {
            engine.executions.describe_execution({"executionArn": a})["status"] for a in results
        }
        if statuses == {"SUCCEEDED"}:
            break
        time.sleep(0.05)
    assert statuses == {"SUCCEEDED"}


def test_a_function_that_exits_or_returns_no_json_fails_its_task_and_the_worker_goes_on(
    engine: Engine,
) -> None:
    def one_task(function: str) -> dict[str, Any]:
        return {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": LAMBDA + function, "End": True}},
        }

    exits = machine(engine, one_task("exits"), "exits")
    cycle = machine(engine, one_task("cycle"), "cycle")
    echo = machine(engine, one_task("echo"), "echo")
    engine.start()
    # More exiting tasks than the worker has task threads: none may be lost to them.
    pool = engine.settings.pool_size
    failed = [engine.executions.start_execution({"stateMachineArn": exits})["executionArn"]
              for _ in range(pool + 2)]  # fmt: skip
    looped = engine.executions.start_execution({"stateMachineArn": cycle})["executionArn"]
    after = engine.executions.start_execution({"stateMachineArn": echo, "input": '{"a": 1}'})
    deadline = time.monotonic() + 30
    described: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        described = {
            arn: engine.executions.describe_execution({"executionArn": arn})
            for arn in [*failed, looped, after["executionArn"]]
        }
        if all(d["status"] != "RUNNING" for d in described.values()):
            break
        time.sleep(0.05)
    assert {described[arn]["status"] for arn in failed} == {"FAILED"}
    assert {described[arn]["error"] for arn in failed} == {"SystemExit"}
    assert described[looped]["status"] == "FAILED"
    assert described[looped]["error"] == "ValueError"
    assert "Circular reference" in described[looped]["cause"]
    assert described[after["executionArn"]]["status"] == "SUCCEEDED"


def test_start_sync_execution_refuses_a_standard_machine(engine: Engine) -> None:
    arn = machine(engine, PASS)
    with pytest.raises(aws.StateMachineTypeNotSupported):
        engine.start_sync_execution({"stateMachineArn": arn})


def test_an_execution_that_cannot_be_advanced_fails_alone(engine: Engine) -> None:
    arn = machine(
        engine, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
    )
    bad = engine.executions.start_execution({"stateMachineArn": arn, "name": "bad"})
    good = engine.executions.start_execution({"stateMachineArn": arn, "name": "good"})
    with engine.store.transaction() as tx:  # a signal no node of this version understands
        tx.add_signals([(bad["executionArn"], 0.0, '{"type": "FromTheFuture"}')])
    engine.clock = engine.worker.clock = lambda: 10**10  # the Waits are due
    for _ in range(5):
        try:
            engine.worker.run_once()
        except Exception:  # the batch with the bad execution rolls back once
            continue
    assert engine.executions.describe_execution(good)["status"] == "SUCCEEDED"
    failed = engine.executions.describe_execution(bad)
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Runtime")
    assert "could not advance" in failed["cause"]
