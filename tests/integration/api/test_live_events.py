"""``GET /api/v1/events`` on a real server: every execution's history, live and resumable."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

from tests.integration.api.conftest import Server

DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def sse_events(server: Server, headers: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Events from the stream as ``{"event", "id", "data"}``, read as they come."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    connection.request(
        "GET",
        "/api/v1/events",
        headers={"Authorization": f"Bearer {server.viewer.token}", **(headers or {})},
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    try:
        fields: dict[str, Any] = {}
        while True:
            line = response.fp.readline().decode().rstrip("\n")
            if line == "":
                if "event" in fields:
                    yield fields
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = json.loads(value) if name == "data" else value
    finally:
        connection.close()


def until(stream: Iterator[dict[str, Any]], kind: str, arn: str) -> list[dict[str, Any]]:
    seen = []
    for event in stream:
        seen.append(event)
        if event["data"].get("type") == kind and event["data"].get("executionArn") == arn:
            return seen
    raise AssertionError("the stream ended")


def start(server: Server, machine: str, name: str) -> str:
    arn: str = server.client().start_execution(stateMachineArn=machine, name=name)["executionArn"]
    return arn


def test_history_of_every_execution_arrives_on_one_stream_and_resumes(server: Server) -> None:
    machine = server.client().create_state_machine(
        name="live-all", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    stream = sse_events(server)
    opened = next(stream)
    assert opened["event"] == "open"
    first, second = start(server, machine, "one"), start(server, machine, "two")
    seen = until(stream, "ExecutionSucceeded", second)
    history = [e for e in seen if e["event"] == "history"]
    by_execution = {
        arn: [e["data"]["type"] for e in history if e["data"]["executionArn"] == arn]
        for arn in (first, second)
    }
    for types in by_execution.values():
        assert types[0] == "ExecutionStarted"
        assert types[-1] == "ExecutionSucceeded"
    # Resume after the first execution's last event: only what came after.
    last_of_first = max(i for i, e in enumerate(history) if e["data"]["executionArn"] == first)
    stream.close()
    resumed = sse_events(server, {"Last-Event-ID": history[last_of_first]["id"]})
    assert next(resumed)["event"] == "open"
    third = start(server, machine, "three")
    again = [e for e in until(resumed, "ExecutionSucceeded", third) if e["event"] == "history"]
    assert [e["id"] for e in again[: len(history) - last_of_first - 1]] == [
        e["id"] for e in history[last_of_first + 1 :]
    ]
    assert all(e["data"]["executionArn"] != first for e in again)
    resumed.close()


def test_a_position_from_another_server_process_starts_with_a_reset(server: Server) -> None:
    stream = sse_events(server, {"Last-Event-ID": "00000000-12"})
    assert next(stream)["event"] == "open"
    reset = next(stream)
    assert reset["event"] == "reset"
    assert "reload" in reset["data"]["reason"]
    stream.close()


def test_a_malformed_position_is_a_bad_request(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=15)
    connection.request(
        "GET",
        "/api/v1/events?after=yesterday",
        headers={"Authorization": f"Bearer {server.viewer.token}"},
    )
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"] == "BadRequest"
    connection.close()
