"""Actions only the REST API asks for: its work on the engine, named so it can travel.

The REST handlers used to reach into the engine (its store, its worker's
figures, the feed) from the event loop. When ``dirigent server`` answers HTTP
in a front process of its own, the engine is in another process, so every
piece of engine work a handler needs is an action here, called like a Step
Functions action: a name and a JSON-shaped request, a JSON-shaped answer or
a :class:`~dirigent.engine.ServiceError`.

The names carry a ``dirigent:`` prefix, which no Step Functions target can
name: :func:`dirigent.api.protocol.action_of` admits only AWS's actions, so
these are reachable through the REST routes (and their role checks) alone.

This module must never write to the store except through the engine's own
catalog calls, and never see HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dirigent.api.feed import Feed, Position
from dirigent.api.protocol import ApiError
from dirigent.engine import Engine, ServiceError
from dirigent.engine.executions import event_shape

DEPLOY_STATE_MACHINE = "dirigent:DeployStateMachine"
EXECUTION_EVENTS = "dirigent:ExecutionEvents"
FULL_HISTORY = "dirigent:FullHistory"
ENGINE_STATS = "dirigent:EngineStats"
READ_FEED = "dirigent:ReadFeed"

#: history events one :data:`EXECUTION_EVENTS` call returns at most
EVENTS_PER_POLL = 500

Action = Callable[[Mapping[str, Any]], dict[str, Any]]


def deploy_state_machine(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """Create the machine, or update its definition when it exists: deploying is idempotent.

    ``request``: ``name``, ``definition`` (text), ``type``, ``roleArn``. The
    answer is the machine as described after the change, with ``created``.
    """
    catalog = engine.catalog
    name = request["name"]
    arn = engine.arns.state_machine(name)
    try:
        catalog.describe_state_machine({"stateMachineArn": arn})
    except ServiceError as exc:
        if exc.code != "StateMachineDoesNotExist":
            raise
        catalog.create_state_machine(
            {
                "name": name,
                "definition": request["definition"],
                "type": request["type"],
                "roleArn": request["roleArn"],
            }
        )
        return {**catalog.describe_state_machine({"stateMachineArn": arn}), "created": True}
    catalog.update_state_machine(
        {"stateMachineArn": arn, "definition": request["definition"], "roleArn": request["roleArn"]}
    )
    return {**catalog.describe_state_machine({"stateMachineArn": arn}), "created": False}


def execution_events(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """An execution's history events after ``after`` (an event id), and its status now.

    Read in one transaction, so a stream that sees a final status has also
    seen every event written before it.
    """
    arn, after = request["executionArn"], int(request["after"])
    with engine.store.transaction() as tx:
        record = engine.executions.execution(tx, arn)
        rows = tx.list_events(arn, after_id=after, limit=EVENTS_PER_POLL, reverse=False)
    return {"events": [event_shape(row) for row in rows], "status": record.status}


def full_history(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """Every history event of an execution, oldest first (at most 25,000 by AWS's limit)."""
    events: list[dict[str, Any]] = []
    query: dict[str, Any] = {"executionArn": request["executionArn"], "maxResults": 1000}
    while True:
        page = engine.executions.get_execution_history(query)
        events += page["events"]
        if "nextToken" not in page:
            return {"events": events}
        query["nextToken"] = page["nextToken"]


def engine_stats(engine: Engine, _request: Mapping[str, Any]) -> dict[str, Any]:
    """This node's worker: what it has done since it started and how busy its loop was."""
    worker = engine.worker
    stats = worker.stats
    return {
        "node": engine.node,
        "running": worker.running,
        "transitions": stats.transitions,
        "commits": stats.commits,
        "tasksRun": stats.tasks_run,
        "iterations": stats.iterations,
        "busySeconds": round(stats.busy_seconds, 6),
        "idleSeconds": round(stats.idle_seconds, 6),
        "utilization": round(stats.utilization, 4),
    }


def read_feed(feed: Feed | None, request: Mapping[str, Any]) -> dict[str, Any]:
    """Committed history events after the position ``after`` (none: where the feed is now).

    Each event comes with its ``id``, the position to resume after it;
    ``from`` is ``after`` as this feed writes it.
    """
    if feed is None:
        raise ApiError("NotFound", "this server keeps no event feed", 404)
    after = request.get("after")
    start = feed.position if after is None else Position.parse(after)
    if start is None:
        raise ApiError("BadRequest", "after must be a position such as 3f2a9c1e-42", 400)
    if after is None:
        return {"events": [], "missed": False, "position": str(start), "from": str(start)}
    batch = feed.read(start)
    return {
        "events": [
            {
                "id": f"{feed.epoch}-{seq}",
                "event": {"executionArn": record.execution_arn, **event_shape(record)},
            }
            for seq, record in batch.events
        ],
        "missed": batch.missed,
        "position": str(batch.position),
        "from": str(start),
    }


def bind_internal(engine: Engine, feed: Feed | None) -> dict[str, Action]:
    return {
        DEPLOY_STATE_MACHINE: lambda request: deploy_state_machine(engine, request),
        EXECUTION_EVENTS: lambda request: execution_events(engine, request),
        FULL_HISTORY: lambda request: full_history(engine, request),
        ENGINE_STATS: lambda request: engine_stats(engine, request),
        READ_FEED: lambda request: read_feed(feed, request),
    }
