"""boto3's Step Functions client, unchanged but for endpoint_url, through every action."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.api.conftest import Server

ROLE = "arn:aws:iam::123456789012:role/dirigent"
PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"ok": True}, "End": True}}}
WAIT = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "test"}}}


def until_done(client: Any, arn: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = client.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running after {timeout} s")


def code_of(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def create(client: Any, name: str, definition: dict[str, Any], **extra: Any) -> str:
    arn: str = client.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE, **extra
    )["stateMachineArn"]
    return arn


def test_state_machine_lifecycle_with_versions_and_aliases(server: Server) -> None:
    sfn = server.client()
    arn = create(sfn, "lifecycle", PASS, tags=[{"key": "team", "value": "a"}])
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == PASS
    assert described["creationDate"].year >= 2024
    assert arn in [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]

    v1 = sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"]
    updated = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    v2 = sfn.update_state_machine(
        stateMachineArn=arn, definition=json.dumps(updated), publish=True
    )["stateMachineVersionArn"]
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert {v["stateMachineVersionArn"] for v in versions} == {v1, v2}

    alias = sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}]
    )["stateMachineAliasArn"]
    assert sfn.describe_state_machine_alias(stateMachineAliasArn=alias)["name"] == "live"
    sfn.update_state_machine_alias(
        stateMachineAliasArn=alias,
        routingConfiguration=[{"stateMachineVersionArn": v2, "weight": 100}],
    )
    aliases = sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
    assert [a["stateMachineAliasArn"] for a in aliases] == [alias]
    started = sfn.start_execution(stateMachineArn=alias, input="{}")["executionArn"]
    assert until_done(sfn, started)["status"] == "SUCCEEDED"
    for_execution = sfn.describe_state_machine_for_execution(executionArn=started)
    assert json.loads(for_execution["definition"]) == updated

    sfn.delete_state_machine_alias(stateMachineAliasArn=alias)
    sfn.delete_state_machine_version(stateMachineVersionArn=v1)
    versions = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in versions] == [v2]

    sfn.tag_resource(resourceArn=arn, tags=[{"key": "tier", "value": "gold"}])
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "tier", "value": "gold"}]
    sfn.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(ClientError) as caught:
        sfn.describe_state_machine(stateMachineArn=arn)
    assert code_of(caught.value) == "StateMachineDoesNotExist"


def test_executions_start_list_history_stop_and_sync(server: Server) -> None:
    sfn = server.client()
    arn = create(sfn, "waits", WAIT)
    started = sfn.start_execution(stateMachineArn=arn, name="one", input='{"n": 1}')
    # AWS's idempotency: the same name and input returns the same execution.
    again = sfn.start_execution(stateMachineArn=arn, name="one", input='{"n": 1}')
    assert again["executionArn"] == started["executionArn"]
    with pytest.raises(ClientError) as caught:
        sfn.start_execution(stateMachineArn=arn, name="one", input='{"n": 2}')
    assert code_of(caught.value) == "ExecutionAlreadyExists"
    listed = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
    assert [e["executionArn"] for e in listed] == [started["executionArn"]]
    sfn.stop_execution(executionArn=started["executionArn"], error="Stop", cause="test")
    assert until_done(sfn, started["executionArn"])["status"] == "ABORTED"
    events = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert events[0]["type"] == "ExecutionStarted"
    assert events[-1]["type"] == "ExecutionAborted"
    newest = sfn.get_execution_history(
        executionArn=started["executionArn"], reverseOrder=True, maxResults=1
    )
    assert newest["events"][0]["type"] == "ExecutionAborted"
    assert "nextToken" in newest

    express = create(sfn, "express", PASS, type="EXPRESS")
    result = sfn.start_sync_execution(stateMachineArn=express, input="{}")
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == {"ok": True}


def test_list_executions_pages_with_next_tokens(server: Server) -> None:
    sfn = server.client()
    arn = create(sfn, "paged", PASS)
    for index in range(5):
        sfn.start_execution(stateMachineArn=arn, name=f"e{index}")
    seen: list[str] = []
    token: str | None = None
    while True:
        page = sfn.list_executions(
            stateMachineArn=arn, maxResults=2, **({"nextToken": token} if token else {})
        )
        seen += [e["name"] for e in page["executions"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert sorted(seen) == [f"e{i}" for i in range(5)]


def test_a_failed_execution_is_redriven(server: Server) -> None:
    sfn = server.client()
    arn = create(sfn, "fails", FAIL)
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    assert until_done(sfn, execution)["status"] == "FAILED"
    redriven = sfn.redrive_execution(executionArn=execution)
    assert redriven["redriveDate"].year >= 2024
    assert until_done(sfn, execution)["redriveCount"] == 1


def test_an_activity_worker_loop_heartbeats_and_succeeds(server: Server) -> None:
    sfn = server.client()
    activity = sfn.create_activity(name="packer")["activityArn"]
    assert sfn.describe_activity(activityArn=activity)["name"] == "packer"
    assert activity in [a["activityArn"] for a in sfn.list_activities()["activities"]]
    definition = {
        "StartAt": "Pack",
        "States": {
            "Pack": {"Type": "Task", "Resource": activity, "HeartbeatSeconds": 30, "End": True}
        },
    }
    arn = create(sfn, "packing", definition)
    worker_client = server.client(server.operator)
    done = threading.Event()
    answered: list[str] = []

    def worker() -> None:
        while not done.is_set():
            task = worker_client.get_activity_task(activityArn=activity, workerName="w1")
            if not task.get("taskToken"):
                continue
            worker_client.send_task_heartbeat(taskToken=task["taskToken"])
            item = json.loads(task["input"])
            worker_client.send_task_success(
                taskToken=task["taskToken"], output=json.dumps({"packed": item["order"]})
            )
            answered.append(task["taskToken"])
            return

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    execution = sfn.start_execution(stateMachineArn=arn, input='{"order": 7}')["executionArn"]
    described = until_done(sfn, execution)
    done.set()
    thread.join(timeout=70)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"packed": 7}
    with pytest.raises(ClientError) as caught:
        sfn.send_task_success(taskToken=answered[0], output="{}")
    assert code_of(caught.value) == "TaskDoesNotExist"
    sfn.delete_activity(activityArn=activity)
    with pytest.raises(ClientError) as caught:
        sfn.describe_activity(activityArn=activity)
    assert code_of(caught.value) == "ActivityDoesNotExist"


def _token_of(sfn: Any, execution: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for event in sfn.get_execution_history(executionArn=execution)["events"]:
            if event["type"] == "TaskScheduled":
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
                token: str = parameters["Payload"]["token"]
                return token
        time.sleep(0.05)
    raise AssertionError("no TaskScheduled event")


def test_wait_for_task_token_callbacks_succeed_and_fail(server: Server) -> None:
    sfn = server.client()
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "Nothing", "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    arn = create(sfn, "callback", definition)
    approved = sfn.start_execution(stateMachineArn=arn, name="approved")["executionArn"]
    sfn.send_task_success(taskToken=_token_of(sfn, approved), output='{"approved": true}')
    described = until_done(sfn, approved)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"approved": True}

    rejected = sfn.start_execution(stateMachineArn=arn, name="rejected")["executionArn"]
    sfn.send_task_failure(taskToken=_token_of(sfn, rejected), error="Rejected", cause="no")
    described = until_done(sfn, rejected)
    assert (described["status"], described["error"]) == ("FAILED", "Rejected")


def test_validate_and_test_state(server: Server) -> None:
    sfn = server.client()
    assert sfn.validate_state_machine_definition(definition=json.dumps(PASS))["result"] == "OK"
    bad = sfn.validate_state_machine_definition(definition='{"StartAt": "X", "States": {}}')
    assert bad["result"] == "FAIL"
    assert bad["diagnostics"][0]["code"] == "SCHEMA_VALIDATION_FAILED"

    state = {"Type": "Pass", "Parameters": {"doubled.$": "States.MathAdd($.n, $.n)"}, "Next": "B"}
    tested = sfn.test_state(definition=json.dumps(state), roleArn=ROLE, input='{"n": 4}')
    assert tested["status"] == "SUCCEEDED"
    assert json.loads(tested["output"]) == {"doubled": 8}
    assert tested["nextState"] == "B"
    failing = sfn.test_state(
        definition=json.dumps({"Type": "Fail", "Error": "E", "Cause": "c"}), roleArn=ROLE
    )
    assert (failing["status"], failing["error"]) == ("FAILED", "E")


def test_map_runs_are_listed_and_described(server: Server) -> None:
    sfn = server.client()
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Echo",
                    "States": {"Echo": {"Type": "Pass", "End": True}},
                },
                "MaxConcurrency": 4,
                "End": True,
            }
        },
    }
    arn = create(sfn, "mapper", definition)
    execution = sfn.start_execution(stateMachineArn=arn, input='{"items": [1, 2, 3]}')
    assert until_done(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
    runs = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
    assert len(runs) == 1
    described = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    assert described["status"] == "SUCCEEDED"
    assert described["maxConcurrency"] == 4
    assert described["itemCounts"]["succeeded"] == 3
