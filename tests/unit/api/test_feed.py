"""The live feed: every execution's committed history events, numbered, read from a position."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dirigent.api.feed import Feed, FeedStore, Position
from dirigent.engine import Engine
from dirigent.store import open_store
from dirigent.store.records import EventRecord

DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def event(arn: str, number: int) -> EventRecord:
    return EventRecord(arn, number, number - 1, 0.0, "PassStateEntered", "{}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, Feed]]:
    feed = Feed(epoch="e1")
    store = open_store(f"sqlite:///{tmp_path / 'feed.db'}")
    try:
        yield Engine(FeedStore(store, feed)), feed
    finally:
        store.close()


def test_a_started_execution_s_committed_history_reaches_the_feed(
    engine: tuple[Engine, Feed],
) -> None:
    machines, feed = engine
    machine = machines.catalog.create_state_machine(
        {"name": "m", "definition": json.dumps(DEFINITION), "roleArn": "r"}
    )["stateMachineArn"]
    arn = machines.executions.start_execution({"stateMachineArn": machine, "name": "one"})[
        "executionArn"
    ]
    batch = feed.read(Position("e1", 0))
    assert [record.execution_arn for _, record in batch.events] == [arn] * len(batch.events)
    assert batch.events[0][1].type == "ExecutionStarted"
    assert [seq for seq, _ in batch.events] == list(range(1, len(batch.events) + 1))
    assert batch.position == feed.position
    assert not batch.missed


def test_a_rolled_back_transaction_publishes_nothing(engine: tuple[Engine, Feed]) -> None:
    machines, feed = engine
    store = machines.store

    def fail_after_writing() -> None:
        with store.transaction() as tx:
            tx.append_events([event("arn:x", 1)])
            raise RuntimeError("the engine gave up")

    with pytest.raises(RuntimeError):
        fail_after_writing()
    assert feed.read(Position("e1", 0)).events == []


def test_a_reader_continues_where_it_left_off() -> None:
    feed = Feed(epoch="e1")
    feed.publish([event("a", 1), event("a", 2)])
    first = feed.read(Position("e1", 0))
    feed.publish([event("b", 1)])
    second = feed.read(first.position)
    assert [(r.execution_arn, r.id) for _, r in second.events] == [("b", 1)]
    assert feed.read(second.position).events == []


def test_a_position_older_than_the_ring_is_reported_as_missed() -> None:
    feed = Feed(capacity=2, epoch="e1")
    feed.publish([event("a", n) for n in range(1, 6)])
    batch = feed.read(Position("e1", 1))
    assert batch.missed
    assert [seq for seq, _ in batch.events] == [4, 5]


def test_another_process_s_position_is_missed_and_reading_goes_on_from_now() -> None:
    feed = Feed(epoch="e2")
    feed.publish([event("a", 1)])
    batch = feed.read(Position("e1", 1))
    assert batch.missed
    assert batch.events == []
    assert batch.position == Position("e2", 1)


def test_a_position_is_written_and_parsed_back() -> None:
    assert Position.parse(str(Position("3f2a9c1e", 42))) == Position("3f2a9c1e", 42)
    for bad in ("", "42", "abc-", "-4", "abc-x", "abc-٤"):
        assert Position.parse(bad) is None, bad
