"""The link between ``dirigent server``'s HTTP front and its engine: a real engine on SQLite,
both ends on one event loop over a real socketpair."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import dirigent.api.link
from dirigent.api.backend import LocalBackend
from dirigent.api.feed import Feed, FeedStore
from dirigent.api.internal import FULL_HISTORY, READ_FEED
from dirigent.api.link import EngineEnd, LinkLost, RemoteBackend, serve_front
from dirigent.api.protocol import ApiError
from dirigent.engine import Engine, EngineSettings
from dirigent.engine.errors import ExecutionDoesNotExist
from dirigent.store import open_store

PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::123456789012:role/r"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    store = open_store(f"sqlite:///{tmp_path / 'link.db'}")
    feed = Feed()
    engine = Engine(FeedStore(store, feed), settings=EngineSettings(activity_poll_seconds=30))
    local = LocalBackend(engine, feed)
    engine.start()
    try:
        yield local
    finally:
        engine.stop()
        local.close()
        store.close()


Linked = Callable[[RemoteBackend, EngineEnd, list[str]], Awaitable[None]]


def run_linked(local: LocalBackend, body: Linked) -> list[str]:
    """Run ``body(remote, engine_end, events)`` with a front's backend linked to
    ``local``; ``events`` records when the front saw the link go."""

    async def main() -> list[str]:
        ours, theirs = socket.socketpair()
        events: list[str] = []
        engine_end = await serve_front(ours, local)
        remote = await RemoteBackend.connect(theirs, lambda: events.append("lost"))
        try:
            await body(remote, engine_end, events)
        finally:
            remote.close()
        return events

    return asyncio.run(main())


def test_calls_answer_through_the_link_with_dates_and_concurrent_starts(
    backend: LocalBackend,
) -> None:
    async def body(remote: RemoteBackend, _end: EngineEnd, _: list[str]) -> None:
        created = await remote.act(
            "CreateStateMachine", {"name": "linked", "definition": PASS, "roleArn": ROLE}
        )
        arn = created["stateMachineArn"]
        assert isinstance(created["creationDate"], datetime)
        starts = await asyncio.gather(
            *(
                remote.act("StartExecution", {"stateMachineArn": arn, "name": f"e{i}"})
                for i in range(200)
            )
        )
        assert sorted(s["executionArn"] for s in starts) == sorted(
            backend.engine.arns.execution("linked", f"e{i}") for i in range(200)
        )
        for _ in range(200):
            listed = await remote.act(
                "ListExecutions",
                {"stateMachineArn": arn, "statusFilter": "SUCCEEDED", "maxResults": 1000},
            )
            if len(listed["executions"]) == 200:
                break
            await asyncio.sleep(0.05)
        assert len(listed["executions"]) == 200
        history = await remote.act(FULL_HISTORY, {"executionArn": starts[0]["executionArn"]})
        assert [e["type"] for e in history["events"]][-1] == "ExecutionSucceeded"

    run_linked(backend, body)


def test_the_engines_errors_arrive_typed_and_the_link_stays_up(backend: LocalBackend) -> None:
    async def body(remote: RemoteBackend, end: EngineEnd, events: list[str]) -> None:
        missing = backend.engine.arns.execution("nothing", "here")
        with pytest.raises(ExecutionDoesNotExist):
            await remote.act("DescribeExecution", {"executionArn": missing})
        with pytest.raises(ApiError) as refused:
            await remote.act(READ_FEED, {"after": "not-a-position"})
        assert refused.value.status == 400
        listed = await remote.act("ListStateMachines", {})
        assert listed["stateMachines"] == []
        assert events == []

    run_linked(backend, body)


def test_calls_in_flight_fail_when_the_engine_side_goes_away(backend: LocalBackend) -> None:
    async def body(remote: RemoteBackend, end: EngineEnd, events: list[str]) -> None:
        activity = await remote.act("CreateActivity", {"name": "never-fed"})
        # A long poll for a task nobody will send: in flight when the link goes.
        polling = asyncio.ensure_future(
            remote.act("GetActivityTask", {"activityArn": activity["activityArn"]})
        )
        await asyncio.sleep(0.2)
        assert not polling.done()
        end.close()
        with pytest.raises(LinkLost):
            await asyncio.wait_for(polling, 5)
        assert events == ["lost"]
        with pytest.raises(LinkLost):
            await remote.act("ListActivities", {})

    run_linked(backend, body)


def test_garbage_on_the_link_closes_it_rather_than_misreading_later_calls(
    backend: LocalBackend,
) -> None:
    async def body(remote: RemoteBackend, end: EngineEnd, events: list[str]) -> None:
        assert await remote.act("ListActivities", {}) == {"activities": []}
        transport: Any = remote._outbox.transport
        transport.write((5).to_bytes(4, "big") + b"\xff\xfe\x00ab")
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.02)
        assert events == ["lost"]

    run_linked(backend, body)


def test_an_answer_too_large_for_the_link_fails_alone(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dirigent.api.link, "MAX_FRAME", 4096)
    big = json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "x" * 8000, "End": True}}}
    )

    async def body(remote: RemoteBackend, _end: EngineEnd, events: list[str]) -> None:
        created = await remote.act(
            "CreateStateMachine", {"name": "big", "definition": big, "roleArn": ROLE}
        )
        with pytest.raises(ApiError) as refused:
            await remote.act(
                "DescribeStateMachine", {"stateMachineArn": created["stateMachineArn"]}
            )
        assert (refused.value.code, refused.value.status) == ("ResponseTooLarge", 500)
        assert "DescribeStateMachine" in refused.value.message
        assert (await remote.act("ListActivities", {})) == {"activities": []}
        assert events == []

    run_linked(backend, body)


async def _poll_then_feed(
    remote: RemoteBackend, stop_poll: Callable[[asyncio.Future[Any]], None]
) -> dict[str, Any]:
    """Start a long poll, stop it with ``stop_poll``, then start an execution with
    an activity task; a fresh poll must get that task."""
    activity = (await remote.act("CreateActivity", {"name": "work"}))["activityArn"]
    definition = json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": activity, "End": True}}}
    )
    machine = await remote.act(
        "CreateStateMachine", {"name": "worked", "definition": definition, "roleArn": ROLE}
    )
    poll = asyncio.ensure_future(
        remote.act("GetActivityTask", {"activityArn": activity, "workerName": "gone"})
    )
    await asyncio.sleep(0.2)
    stop_poll(poll)
    await asyncio.sleep(0.2)  # the engine's poll sees the cancel within one of its 50 ms rounds
    await remote.act("StartExecution", {"stateMachineArn": machine["stateMachineArn"]})
    return await asyncio.wait_for(
        remote.act("GetActivityTask", {"activityArn": activity, "workerName": "here"}), 10
    )


def test_a_poll_whose_caller_went_away_does_not_take_the_next_task(
    backend: LocalBackend,
) -> None:
    async def body(remote: RemoteBackend, _end: EngineEnd, _events: list[str]) -> None:
        task = await _poll_then_feed(remote, lambda poll: poll.cancel())
        assert "taskToken" in task

    run_linked(backend, body)


def test_winding_down_ends_long_polls_with_no_task_at_once(backend: LocalBackend) -> None:
    async def body(remote: RemoteBackend, _end: EngineEnd, _events: list[str]) -> None:
        activity = (await remote.act("CreateActivity", {"name": "idle"}))["activityArn"]
        poll = asyncio.ensure_future(remote.act("GetActivityTask", {"activityArn": activity}))
        await asyncio.sleep(0.2)
        backend.wind_down()
        assert await asyncio.wait_for(poll, 2) == {}
        # A poll arriving while the server stops does not wait either.
        fresh = remote.act("GetActivityTask", {"activityArn": activity})
        assert await asyncio.wait_for(fresh, 2) == {}

    run_linked(backend, body)


def test_a_poll_from_a_front_that_went_away_does_not_take_the_next_task(
    backend: LocalBackend,
) -> None:
    arns: dict[str, str] = {}

    async def leaving(remote: RemoteBackend, _end: EngineEnd, _events: list[str]) -> None:
        arns["activity"] = (await remote.act("CreateActivity", {"name": "work"}))["activityArn"]
        resource = arns["activity"]
        definition = json.dumps(
            {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": resource, "End": True}}}
        )
        created = await remote.act(
            "CreateStateMachine", {"name": "worked", "definition": definition, "roleArn": ROLE}
        )
        arns["machine"] = created["stateMachineArn"]
        poll = asyncio.ensure_future(remote.act("GetActivityTask", {"activityArn": resource}))
        await asyncio.sleep(0.2)
        remote.close()  # the front goes away with the poll in flight
        with pytest.raises(LinkLost):
            await poll
        await asyncio.sleep(0.2)

    async def next_front(remote: RemoteBackend, _end: EngineEnd, _events: list[str]) -> None:
        await remote.act("StartExecution", {"stateMachineArn": arns["machine"]})
        task = await asyncio.wait_for(
            remote.act("GetActivityTask", {"activityArn": arns["activity"]}), 10
        )
        assert "taskToken" in task

    run_linked(backend, leaving)
    run_linked(backend, next_front)
