"""GET /api/v1/engine: what this node's engine worker has done, and how busy its loop is."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from dirigent.api.auth import Principal
from tests.integration.api.conftest import Server

TASK = "arn:aws:lambda:us-east-1:123456789012:function:Nothing"


def engine_stats(server: Server, principal: Principal | None) -> Any:
    headers = {} if principal is None else {"Authorization": f"Bearer {principal.token}"}
    request = urllib.request.Request(server.url + "/api/v1/engine", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_viewer_sees_the_work_done_and_an_idle_loop_after_it(server: Server) -> None:
    before = engine_stats(server, server.viewer)
    client = server.client()
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": TASK, "Next": "B"},
            "B": {"Type": "Task", "Resource": TASK, "End": True},
        },
    }
    arn = client.create_state_machine(
        name="stats", definition=json.dumps(definition), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    executions = [
        client.start_execution(stateMachineArn=arn, name=f"s{n}")["executionArn"] for n in range(5)
    ]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = {client.describe_execution(executionArn=e)["status"] for e in executions}
        if statuses == {"SUCCEEDED"}:
            break
        time.sleep(0.05)
    assert statuses == {"SUCCEEDED"}
    time.sleep(0.5)  # the loop waits for work meanwhile
    after = engine_stats(server, server.viewer)

    assert after["running"] is True
    assert after["node"] == before["node"]
    # Five executions of two tasks each: at least three transitions apiece.
    assert after["transitions"] - before["transitions"] >= 15
    # A wait still going on is counted when it ends: up to one idle poll (0.25 s) of
    # the half second may be missing.
    assert after["idleSeconds"] - before["idleSeconds"] >= 0.2
    assert after["busySeconds"] > before["busySeconds"]
    assert 0 <= after["utilization"] < 0.5


def test_the_engine_stats_need_credentials(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        engine_stats(server, None)
    refused.value.close()
    assert refused.value.code == 401
