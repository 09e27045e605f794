"""Executions kept in memory between transitions never stand in for a newer row.

A node keeps each execution it advanced as an object (``transitions.Resident``)
and reuses it for the next transition only when the claimed row holds exactly
the snapshot that object wrote. These tests make the row move on without the
object: another node advances the execution, or the transition that produced
the object never commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from dirigent.engine import Engine, FunctionRegistry
from dirigent.store import Store, StoreError, open_store
from dirigent.store.port import Transaction

STEPS = ("One", "Two", "Three", "Four")


def _workflow(activity: str) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for index, name in enumerate(STEPS):
        state: dict[str, Any] = {"Type": "Task", "Resource": activity, "ResultPath": f"$.{name}"}
        if index + 1 < len(STEPS):
            state["Next"] = STEPS[index + 1]
        else:
            state["End"] = True
        states[name] = state
    return {"StartAt": STEPS[0], "States": states}


def _start(engine: Engine, name: str) -> tuple[str, dict[str, Any]]:
    """The activity the workflow waits on, and its execution, started and advanced."""
    activity: str = engine.catalog.create_activity({"name": "step"})["activityArn"]
    arn = engine.catalog.create_state_machine(
        {
            "name": name,
            "definition": json.dumps(_workflow(activity)),
            "roleArn": "arn:aws:iam::1:role/r",
        }
    )["stateMachineArn"]
    execution = engine.executions.start_execution({"stateMachineArn": arn, "input": "{}"})
    engine.run_until_idle()
    return activity, execution


def _answer(engine: Engine, activity: str, value: str) -> None:
    task = engine.get_activity_task({"activityArn": activity, "workerName": "w"})
    assert task, "the activity has no task waiting"
    engine.executions.send_task_success(
        {"taskToken": task["taskToken"], "output": json.dumps(value)}
    )


def _check_history(engine: Engine, execution: dict[str, Any]) -> None:
    events = engine.executions.get_execution_history({**execution, "maxResults": 1000})["events"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"
    ]
    assert entered == list(STEPS)


def test_nodes_taking_turns_on_one_execution_each_continue_from_the_row(store_url: str) -> None:
    stores = [open_store(store_url), open_store(store_url)]
    nodes = [Engine(store, functions=FunctionRegistry({})) for store in stores]
    try:
        first = nodes[0]
        activity, execution = _start(first, "turns")
        # Each result is applied by the other node than the one before: every
        # node's kept object is one transition behind the row when it next claims.
        for index, name in enumerate(STEPS):
            node = nodes[(index + 1) % 2]
            _answer(node, activity, name.lower())
            node.run_until_idle()
        described = first.executions.describe_execution(execution)
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {name: name.lower() for name in STEPS}
        _check_history(first, execution)
    finally:
        for node in nodes:
            node.worker.stop()
        for store in stores:
            store.close()


class _FailingCommits:
    """A real store whose next ``failures`` transactions that write history roll back."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.failures = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            wrote: list[bool] = []
            yield _Watched(tx, wrote)  # type: ignore[misc]
            if wrote and self.failures:
                self.failures -= 1
                raise StoreError("the disk refused the commit")

    def close(self) -> None:
        self.inner.close()


class _Watched:
    def __init__(self, tx: Transaction, wrote: list[bool]) -> None:
        self._tx = tx
        self._wrote = wrote

    def append_events(self, events: Any) -> None:
        if events:
            self._wrote.append(True)
        self._tx.append_events(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def test_a_transition_that_did_not_commit_is_not_reused(store_url: str) -> None:
    store = _FailingCommits(open_store(store_url))
    engine = Engine(store, functions=FunctionRegistry({}))  # type: ignore[arg-type]
    try:
        activity, execution = _start(engine, "rolled-back")
        for name in STEPS:
            _answer(engine, activity, name.lower())
            store.failures = 1
            with pytest.raises(StoreError):
                engine.run_until_idle()
            # The object the failed transition left behind must not be taken
            # for the row, which still holds the state before it.
            engine.run_until_idle()
        described = engine.executions.describe_execution(execution)
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {name: name.lower() for name in STEPS}
        _check_history(engine, execution)
    finally:
        engine.worker.stop()
        store.close()
