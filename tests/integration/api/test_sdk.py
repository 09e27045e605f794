"""The service authors' SDK against a real server: start and await, activity workers."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from dirigent.sdk import (
    ActivityWorker,
    ExecutionFailed,
    StepFunctions,
    StepFunctionsError,
    TaskFailure,
)
from tests.integration.api.conftest import Server


def _client(server: Server, role: str = "admin") -> StepFunctions:
    who = getattr(server, role)
    return StepFunctions(server.url, who.access_key_id, who.secret_access_key)


def _machine(client: StepFunctions, name: str, definition: dict[str, Any]) -> str:
    return str(
        client.call(
            "CreateStateMachine",
            {
                "name": name,
                "definition": json.dumps(definition),
                "roleArn": "arn:aws:iam::123456789012:role/sdk",
            },
        )["stateMachineArn"]
    )


def test_run_starts_an_execution_and_returns_its_output(server: Server) -> None:
    client = _client(server)
    arn = _machine(
        client,
        "sdk-echo",
        {
            "StartAt": "P",
            "States": {"P": {"Type": "Pass", "Parameters": {"got.$": "$.n"}, "End": True}},
        },
    )
    assert client.run(arn, {"n": 5}) == {"got": 5}


def test_an_execution_that_fails_raises_with_its_error_and_cause(server: Server) -> None:
    client = _client(server)
    arn = _machine(
        client,
        "sdk-fail",
        {
            "StartAt": "F",
            "States": {"F": {"Type": "Fail", "Error": "Order.Invalid", "Cause": "no items"}},
        },
    )
    with pytest.raises(ExecutionFailed) as failed:
        client.run(arn)
    assert (failed.value.status, failed.value.error, failed.value.cause) == (
        "FAILED",
        "Order.Invalid",
        "no items",
    )


def test_errors_carry_the_aws_error_code(server: Server) -> None:
    with pytest.raises(StepFunctionsError) as denied:
        _client(server, "viewer").start_execution(
            "arn:aws:states:us-east-1:123456789012:stateMachine:sdk-echo"
        )
    assert denied.value.code == "AccessDeniedException"
    bogus = StepFunctions(server.url, "AKIDNOTKNOWN", "secret")
    with pytest.raises(StepFunctionsError) as unknown:
        bogus.call("ListStateMachines", {})
    assert unknown.value.code == "UnrecognizedClientException"


def test_an_activity_worker_answers_tasks_and_reports_failures(server: Server) -> None:
    client = _client(server)
    activity = client.call("CreateActivity", {"name": "sdk-review"})["activityArn"]
    arn = _machine(
        client,
        "sdk-review-flow",
        {
            "StartAt": "Review",
            "States": {
                "Review": {
                    "Type": "Task",
                    "Resource": activity,
                    "HeartbeatSeconds": 30,
                    "End": True,
                }
            },
        },
    )

    def review(order: Any) -> Any:
        if order["amount"] > 100:
            raise TaskFailure("Review.Rejected", "too expensive")
        return {"approved": order["id"]}

    worker = ActivityWorker(client, activity, review, name="reviewer-1", heartbeat_seconds=0.2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert client.run(arn, {"id": "o-1", "amount": 10}, timeout=60) == {"approved": "o-1"}
        with pytest.raises(ExecutionFailed) as rejected:
            client.run(arn, {"id": "o-2", "amount": 500}, timeout=60)
        assert rejected.value.error == "Review.Rejected"
    finally:
        # The worker may sit in a long poll; it ends when the server stops.
        worker.stop()
