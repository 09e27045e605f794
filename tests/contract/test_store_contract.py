"""The store contract: what every adapter of ``dirigent.store`` must do.

Each test runs against SQLite and PostgreSQL (see ``conftest.py``); the last
sections hold what only one of them can show (row locks between engine nodes
on PostgreSQL, a second connection on one SQLite file).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dirigent.store import Conflict, Store, StoreError, open_store
from dirigent.store.records import (
    ActivityRecord,
    AliasRecord,
    EventRecord,
    ExecutionRecord,
    MachineRecord,
    TaskRecord,
    VersionRecord,
)

PREFIX = "arn:aws:states:us-east-1:123456789012"


# ---------------------------------------------------------------------- records


def machine(name: str = "orders", **changes: Any) -> MachineRecord:
    record = MachineRecord(
        arn=f"{PREFIX}:stateMachine:{name}",
        name=name,
        type="STANDARD",
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
        role_arn="arn:aws:iam::123456789012:role/run",
        created_at=1_700_000_000.25,
        updated_at=1_700_000_000.25,
        revision_id="r1",
    )
    return replace(record, **changes)


def version(machine_arn: str, number: int, **changes: Any) -> VersionRecord:
    record = VersionRecord(
        arn=f"{machine_arn}:{number}",
        machine_arn=machine_arn,
        version=number,
        definition="{}",
        role_arn="arn:aws:iam::123456789012:role/run",
        revision_id=f"r{number}",
        created_at=1_700_000_000.0 + number,
    )
    return replace(record, **changes)


def alias(machine_arn: str, name: str, routing: str, **changes: Any) -> AliasRecord:
    record = AliasRecord(
        arn=f"{machine_arn}:{name}",
        machine_arn=machine_arn,
        name=name,
        routing=routing,
        created_at=1_700_000_000.0,
        updated_at=1_700_000_000.0,
    )
    return replace(record, **changes)


def activity(name: str) -> ActivityRecord:
    return ActivityRecord(arn=f"{PREFIX}:activity:{name}", name=name, created_at=1_700_000_000.0)


def execution(
    name: str, *, machine_name: str = "orders", started_at: float = 1_700_000_100.0, **changes: Any
) -> ExecutionRecord:
    record = ExecutionRecord(
        arn=f"{PREFIX}:execution:{machine_name}:{name}",
        machine_arn=f"{PREFIX}:stateMachine:{machine_name}",
        name=name,
        status="RUNNING",
        input='{"order": 1}',
        started_at=started_at,
        started_with=f"{PREFIX}:stateMachine:{machine_name}",
        definition="{}",
        role_arn="arn:aws:iam::123456789012:role/run",
        token_prefix=f"tok-{name}",
    )
    return replace(record, **changes)


def event(execution_arn: str, number: int) -> EventRecord:
    return EventRecord(
        execution_arn=execution_arn,
        id=number,
        previous_id=number - 1,
        timestamp=1_700_000_100.0 + number / 1000,
        type="PassStateEntered" if number > 1 else "ExecutionStarted",
        details=f'{{"n": {number}}}',
    )


def task(
    token: str,
    *,
    kind: str = "function",
    created_at: float = 1_700_000_200.0,
    execution_arn: str = f"{PREFIX}:execution:orders:a",
    **changes: Any,
) -> TaskRecord:
    record = TaskRecord(
        token=token,
        execution_arn=execution_arn,
        kind=kind,
        command=f'{{"token": "{token}"}}',
        status="ready",
        created_at=created_at,
    )
    return replace(record, **changes)


def write(store: Store, action: Callable[[Any], object]) -> None:
    with store.transaction() as tx:
        action(tx)


# ---------------------------------------------------------------------- catalog: machines


def test_an_inserted_machine_reads_back_equal(store: Store) -> None:
    record = machine(description="takes orders", logging='{"level": "ALL"}', tracing='{"x": 1}')
    write(store, lambda tx: tx.insert_machine(record))
    with store.transaction() as tx:
        assert tx.get_machine(record.arn) == record


def test_an_unknown_machine_reads_as_none(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.get_machine(f"{PREFIX}:stateMachine:nothing") is None


def test_an_updated_machine_reads_back_with_every_field_changed(store: Store) -> None:
    record = machine()
    write(store, lambda tx: tx.insert_machine(record))
    changed = replace(
        record,
        type="EXPRESS",
        definition="{}",
        role_arn="arn:aws:iam::123456789012:role/other",
        updated_at=1_700_000_999.5,
        revision_id="r2",
        description="new",
        logging='{"level": "ERROR"}',
        tracing='{"enabled": true}',
    )
    write(store, lambda tx: tx.update_machine(changed))
    with store.transaction() as tx:
        assert tx.get_machine(record.arn) == changed


def test_a_machine_written_in_a_transaction_reads_back_as_written_in_it(store: Store) -> None:
    # reads of a machine may be remembered within a transaction, never past its own writes
    record = machine()
    changed = replace(record, description="changed", revision_id="r2")
    with store.transaction() as tx:
        assert tx.get_machine(record.arn) is None
        tx.insert_machine(record)
        assert tx.get_machine(record.arn) == record
        tx.update_machine(changed)
        assert tx.get_machine(record.arn) == changed
        tx.delete_machine(record.arn)
        assert tx.get_machine(record.arn) is None
    with store.transaction() as tx:
        assert tx.get_machine(record.arn) is None


def test_machines_list_in_arn_order_and_page_after_the_last_arn_seen(store: Store) -> None:
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    write(store, lambda tx: [tx.insert_machine(machine(n)) for n in names])
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        with store.transaction() as tx:
            page = tx.list_machines(after, 2)
        if not page:
            break
        pages.append([m.name for m in page])
        after = page[-1].arn
    assert pages == [["alpha", "bravo"], ["charlie", "delta"], ["echo"]]


def test_a_deleted_machine_is_gone_with_its_versions_aliases_and_tags(store: Store) -> None:
    kept, doomed = machine("kept"), machine("doomed")
    doomed_version = version(doomed.arn, 1)
    doomed_alias = alias(doomed.arn, "live", "[]")

    def setup(tx: Any) -> None:
        for record in (kept, doomed):
            tx.insert_machine(record)
            tx.insert_version(version(record.arn, 1))
            tx.put_alias(alias(record.arn, "live", "[]"))
            tx.set_tags(record.arn, {"team": "shop"})
        tx.set_tags(doomed_version.arn, {"v": "1"})
        tx.set_tags(doomed_alias.arn, {"a": "1"})

    write(store, setup)
    write(store, lambda tx: tx.delete_machine(doomed.arn))
    with store.transaction() as tx:
        assert tx.get_machine(doomed.arn) is None
        assert tx.list_versions(doomed.arn) == []
        assert tx.list_aliases(doomed.arn) == []
        assert tx.list_tags(doomed.arn) == {}
        assert tx.list_tags(doomed_version.arn) == {}
        assert tx.list_tags(doomed_alias.arn) == {}
        assert tx.get_machine(kept.arn) == kept
        assert len(tx.list_versions(kept.arn)) == 1
        assert len(tx.list_aliases(kept.arn)) == 1
        assert tx.list_tags(kept.arn) == {"team": "shop"}


def test_a_second_machine_with_a_taken_name_conflicts(store: Store) -> None:
    write(store, lambda tx: tx.insert_machine(machine("orders")))
    twin = machine("orders", arn=f"{PREFIX}:stateMachine:orders-twin")
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_machine(twin)
    with store.transaction() as tx:
        assert tx.get_machine(twin.arn) is None


def test_a_second_machine_with_a_taken_arn_conflicts(store: Store) -> None:
    write(store, lambda tx: tx.insert_machine(machine("orders")))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_machine(replace(machine("orders"), name="other-name"))


# ---------------------------------------------------------------------- catalog: versions, aliases


def test_versions_read_back_and_list_newest_first(store: Store) -> None:
    parent = machine()
    records = [version(parent.arn, n, description=f"v{n}") for n in (2, 1, 3)]
    write(store, lambda tx: [tx.insert_version(v) for v in records])
    with store.transaction() as tx:
        assert [v.version for v in tx.list_versions(parent.arn)] == [3, 2, 1]
        assert tx.get_version(records[0].arn) == records[0]
        assert tx.list_versions(machine("other").arn) == []


def test_a_version_number_taken_for_the_machine_conflicts(store: Store) -> None:
    parent = machine()
    write(store, lambda tx: tx.insert_version(version(parent.arn, 1)))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_version(version(parent.arn, 1, arn=f"{parent.arn}:one-again"))


def test_a_deleted_version_is_gone(store: Store) -> None:
    parent = machine()
    write(store, lambda tx: [tx.insert_version(version(parent.arn, n)) for n in (1, 2)])
    write(store, lambda tx: tx.delete_version(f"{parent.arn}:1"))
    with store.transaction() as tx:
        assert tx.get_version(f"{parent.arn}:1") is None
        assert [v.version for v in tx.list_versions(parent.arn)] == [2]


def test_putting_an_alias_again_replaces_it(store: Store) -> None:
    parent = machine()
    first = alias(parent.arn, "live", '[{"weight": 100}]', description="first")
    second = replace(first, routing='[{"weight": 50}]', updated_at=1_700_000_500.0, description="")
    write(store, lambda tx: tx.put_alias(first))
    write(store, lambda tx: tx.put_alias(second))
    with store.transaction() as tx:
        assert tx.get_alias(first.arn) == second
        assert tx.list_aliases(parent.arn) == [second]


def test_aliases_list_per_machine_in_arn_order_and_delete_one_by_one(store: Store) -> None:
    parent, other = machine(), machine("other")
    records = [alias(parent.arn, n, "[]") for n in ("prod", "beta", "canary")]

    def setup(tx: Any) -> None:
        for record in records:
            tx.put_alias(record)
        tx.put_alias(alias(other.arn, "prod", "[]"))

    write(store, setup)
    with store.transaction() as tx:
        assert [a.name for a in tx.list_aliases(parent.arn)] == ["beta", "canary", "prod"]
    write(store, lambda tx: tx.delete_alias(records[1].arn))
    with store.transaction() as tx:
        assert tx.get_alias(records[1].arn) is None
        assert [a.name for a in tx.list_aliases(parent.arn)] == ["canary", "prod"]
        assert [a.name for a in tx.list_aliases(other.arn)] == ["prod"]


# ---------------------------------------------------------------------- catalog: activities, tags


def test_activities_read_back_page_by_arn_and_delete(store: Store) -> None:
    records = [activity(n) for n in ("pack", "ship", "bill")]
    write(store, lambda tx: [tx.insert_activity(a) for a in records])
    with store.transaction() as tx:
        assert tx.get_activity(records[0].arn) == records[0]
        first = tx.list_activities(None, 2)
        second = tx.list_activities(first[-1].arn, 2)
    assert [a.name for a in first + second] == ["bill", "pack", "ship"]
    write(store, lambda tx: tx.delete_activity(records[0].arn))
    with store.transaction() as tx:
        assert tx.get_activity(records[0].arn) is None
        assert [a.name for a in tx.list_activities(None, 10)] == ["bill", "ship"]


def test_an_activity_with_a_taken_name_conflicts(store: Store) -> None:
    write(store, lambda tx: tx.insert_activity(activity("pack")))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_activity(replace(activity("pack"), arn=f"{PREFIX}:activity:pack2"))


def test_a_deleted_activity_loses_its_tags(store: Store) -> None:
    record = activity("pack")
    write(store, lambda tx: (tx.insert_activity(record), tx.set_tags(record.arn, {"k": "v"})))
    write(store, lambda tx: tx.delete_activity(record.arn))
    with store.transaction() as tx:
        assert tx.list_tags(record.arn) == {}


def test_tags_are_set_overwritten_removed_and_listed_per_resource(store: Store) -> None:
    arn, other = machine().arn, machine("other").arn
    write(store, lambda tx: tx.set_tags(arn, {"team": "shop", "tier": "gold"}))
    write(store, lambda tx: tx.set_tags(other, {"team": "ops"}))
    write(store, lambda tx: tx.set_tags(arn, {"tier": "silver", "cost": "7"}))
    with store.transaction() as tx:
        assert tx.list_tags(arn) == {"cost": "7", "team": "shop", "tier": "silver"}
    write(store, lambda tx: tx.remove_tags(arn, ["team", "missing"]))
    with store.transaction() as tx:
        assert tx.list_tags(arn) == {"cost": "7", "tier": "silver"}
        assert tx.list_tags(other) == {"team": "ops"}
        assert tx.list_tags(machine("nothing").arn) == {}


# ---------------------------------------------------------------------- executions


def full_execution(name: str = "full") -> ExecutionRecord:
    """An execution with every column set, text with quotes, escapes and
    non-ASCII characters, and a float that needs all its digits."""
    return execution(
        name,
        status="FAILED",
        output='{"ok": false, "quote": "\\"\\u0000\\ud83d\\ude00"}',
        error="States.TaskFailed",
        cause="boom ' \\ é",
        stopped_at=1_700_000_150.123456789,
        snapshot='{"state": "Charge"}',
        event_count=7,
        redrive_count=2,
        redriven_at=1_700_000_160.0,
        parent_arn=f"{PREFIX}:execution:parent:p",
        parent_token="parent-token",
        machine_type="EXPRESS",
    )


def test_an_inserted_execution_reads_back_equal(store: Store) -> None:
    plain = execution("plain")
    full = full_execution()
    write(store, lambda tx: (tx.insert_execution(plain), tx.insert_execution(full)))
    with store.transaction() as tx:
        assert tx.get_execution(plain.arn) == plain
        assert tx.get_execution(full.arn) == full
        assert tx.get_execution(f"{PREFIX}:execution:orders:nothing") is None


@pytest.mark.parametrize("piped", [False, True], ids=["plain", "pipelined"])
def test_executions_inserted_in_one_statement_read_back_equal(store: Store, piped: bool) -> None:
    full = full_execution()
    records = [execution("plain"), full, execution("third", machine_name="other")]
    with store.transaction() as tx, tx.pipelined() if piped else nullcontext():
        tx.insert_executions(records)
    with store.transaction() as tx:
        for record in records:
            assert tx.get_execution(record.arn) == record


@pytest.mark.parametrize("piped", [False, True], ids=["plain", "pipelined"])
def test_many_executions_one_of_them_taken_conflict_and_leave_nothing(
    store: Store, piped: bool
) -> None:
    taken = execution("taken")
    write(store, lambda tx: tx.insert_execution(taken))
    fresh = execution("fresh")
    with (
        pytest.raises(Conflict),
        store.transaction() as tx,
        tx.pipelined() if piped else nullcontext(),
    ):
        tx.insert_executions([fresh, replace(taken, input='"again"')])
    with store.transaction() as tx:
        assert tx.get_execution(fresh.arn) is None
        assert tx.get_execution(taken.arn) == taken


def test_an_updated_execution_reads_back_updated(store: Store) -> None:
    record = execution("a")
    write(store, lambda tx: tx.insert_execution(record))
    done = replace(
        record,
        status="SUCCEEDED",
        output='{"shipped": true}',
        stopped_at=1_700_000_300.0,
        snapshot='{"done": true}',
        event_count=12,
    )
    write(store, lambda tx: tx.update_execution(done))
    with store.transaction() as tx:
        assert tx.get_execution(record.arn) == done


def test_updating_an_execution_keeps_what_never_changes_after_its_start(store: Store) -> None:
    record = execution("a")
    write(store, lambda tx: tx.insert_execution(record))
    write(store, lambda tx: tx.update_execution(replace(record, input='"other"', status="FAILED")))
    with store.transaction() as tx:
        assert tx.get_execution(record.arn) == replace(record, status="FAILED")


def test_an_execution_name_taken_on_the_machine_conflicts(store: Store) -> None:
    first = execution("a")
    write(store, lambda tx: tx.insert_execution(first))
    twin = replace(first, arn=f"{first.arn}-twin")
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_execution(twin)
    with store.transaction() as tx:
        # the same name on another machine is a different execution
        tx.insert_execution(execution("a", machine_name="other"))


def test_an_execution_arn_taken_conflicts(store: Store) -> None:
    first = execution("a")
    write(store, lambda tx: tx.insert_execution(first))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.insert_execution(replace(first, name="b"))


def test_a_transaction_goes_on_after_a_conflict_and_commits_the_rest(store: Store) -> None:
    # StartExecution's idempotency reads the existing execution after the conflict.
    first = execution("a")
    write(store, lambda tx: tx.insert_execution(first))
    with store.transaction() as tx:
        with pytest.raises(Conflict):
            tx.insert_execution(replace(first, input='{"other": true}'))
        assert tx.get_execution(first.arn) == first
        tx.insert_machine(machine())
    with store.transaction() as tx:
        assert tx.get_machine(machine().arn) == machine()
        assert tx.get_execution(first.arn) == first


def test_executions_list_filtered_by_machine_and_status(store: Store) -> None:
    records = [
        execution("a", status="RUNNING"),
        execution("b", status="SUCCEEDED", started_at=1_700_000_101.0),
        execution("c", machine_name="other", status="RUNNING", started_at=1_700_000_102.0),
    ]
    write(store, lambda tx: [tx.insert_execution(r) for r in records])

    def names(machine_arn: str | None, status: str | None) -> list[str]:
        with store.transaction() as tx:
            found = tx.list_executions(
                machine_arn=machine_arn, status=status, before=None, limit=10
            )
        return [e.name for e in found]

    orders = machine().arn
    assert names(None, None) == ["c", "b", "a"]
    assert names(orders, None) == ["b", "a"]
    assert names(None, "RUNNING") == ["c", "a"]
    assert names(orders, "RUNNING") == ["a"]
    assert names(orders, "ABORTED") == []


def test_executions_page_by_start_time_then_arn_descending_without_gaps_or_repeats(
    store: Store,
) -> None:
    # Several executions share a start time, so the arn must break the ties.
    records = [execution(f"e{i:02d}", started_at=1_700_000_100.0 + i // 4) for i in range(17)]
    write(store, lambda tx: [tx.insert_execution(r) for r in reversed(records)])
    expected = sorted(records, key=lambda e: (e.started_at, e.arn), reverse=True)
    seen: list[ExecutionRecord] = []
    before: tuple[float, str] | None = None
    while True:
        with store.transaction() as tx:
            page = tx.list_executions(machine_arn=None, status=None, before=before, limit=3)
        assert len(page) <= 3
        if not page:
            break
        seen.extend(page)
        before = (page[-1].started_at, page[-1].arn)
    assert seen == expected


# ---------------------------------------------------------------------- history events


def test_events_list_forward_in_id_order_page_after_an_id(store: Store) -> None:
    arn, other = execution("a").arn, execution("b").arn
    write(store, lambda tx: tx.append_events([event(arn, n) for n in (1, 2, 3)]))
    write(store, lambda tx: tx.append_events([event(other, 1)]))
    write(store, lambda tx: tx.append_events([event(arn, n) for n in (4, 5)]))
    with store.transaction() as tx:
        assert tx.list_events(arn, after_id=0, limit=100, reverse=False) == [
            event(arn, n) for n in range(1, 6)
        ]
        assert [e.id for e in tx.list_events(arn, after_id=0, limit=2, reverse=False)] == [1, 2]
        assert [e.id for e in tx.list_events(arn, after_id=2, limit=2, reverse=False)] == [3, 4]
        assert [e.id for e in tx.list_events(arn, after_id=4, limit=2, reverse=False)] == [5]
        assert tx.list_events(arn, after_id=5, limit=2, reverse=False) == []


def test_events_list_in_reverse_from_the_newest_and_page_below_an_id(store: Store) -> None:
    arn = execution("a").arn
    write(store, lambda tx: tx.append_events([event(arn, n) for n in range(1, 6)]))
    with store.transaction() as tx:
        assert [e.id for e in tx.list_events(arn, after_id=0, limit=2, reverse=True)] == [5, 4]
        assert [e.id for e in tx.list_events(arn, after_id=4, limit=2, reverse=True)] == [3, 2]
        assert [e.id for e in tx.list_events(arn, after_id=2, limit=2, reverse=True)] == [1]
        assert tx.list_events(arn, after_id=1, limit=2, reverse=True) == []


def test_an_event_id_taken_in_the_execution_conflicts(store: Store) -> None:
    arn = execution("a").arn
    write(store, lambda tx: tx.append_events([event(arn, 1), event(arn, 2)]))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.append_events([event(arn, 3), event(arn, 2)])
    with store.transaction() as tx:
        assert [e.id for e in tx.list_events(arn, after_id=0, limit=10, reverse=False)] == [1, 2]


# ---------------------------------------------------------------------- signals


def test_due_signals_are_only_the_due_ones_in_due_time_then_id_order(store: Store) -> None:
    arn, other = execution("a").arn, execution("b").arn
    write(
        store,
        lambda tx: tx.add_signals(
            [
                (arn, 20.0, "late"),
                (arn, 10.0, "first-at-10"),
                (other, 5.0, "other"),
                (arn, 10.0, "second-at-10"),
                (arn, 99.0, "future"),
                (arn, 5.0, "earliest"),
            ]
        ),
    )
    with store.transaction() as tx:
        due = tx.due_signals(arn, 20.0)
    assert [s.body for s in due] == ["earliest", "first-at-10", "second-at-10", "late"]
    assert all(s.execution_arn == arn for s in due)
    assert [s.due_at for s in due] == [5.0, 10.0, 10.0, 20.0]


def test_deleted_signals_are_no_longer_due(store: Store) -> None:
    arn = execution("a").arn
    write(store, lambda tx: tx.add_signals([(arn, 1.0, "one"), (arn, 2.0, "two")]))
    with store.transaction() as tx:
        first = tx.due_signals(arn, 10.0)[0]
        tx.delete_signals([first.id])
    with store.transaction() as tx:
        assert [s.body for s in tx.due_signals(arn, 10.0)] == ["two"]


def test_next_due_is_the_earliest_signal_or_none(store: Store) -> None:
    with store.transaction() as tx:
        assert tx.next_due() is None
    write(
        store,
        lambda tx: tx.add_signals(
            [(execution("a").arn, 30.5, "x"), (execution("b").arn, 12.25, "y")]
        ),
    )
    with store.transaction() as tx:
        assert tx.next_due() == 12.25
        tx.delete_signals([s.id for s in tx.due_signals(execution("b").arn, 100.0)])
    with store.transaction() as tx:
        assert tx.next_due() == 30.5


def test_claim_executions_returns_only_executions_with_a_due_signal(store: Store) -> None:
    due, future, idle = execution("due"), execution("future"), execution("idle")

    def setup(tx: Any) -> None:
        for record in (due, future, idle):
            tx.insert_execution(record)
        tx.add_signals([(due.arn, 10.0, "a"), (due.arn, 11.0, "b"), (future.arn, 50.0, "c")])

    write(store, setup)
    with store.transaction() as tx:
        assert tx.claim_executions(20.0, 10) == [due]
    with store.transaction() as tx:
        assert {e.name for e in tx.claim_executions(50.0, 10)} == {"due", "future"}


def test_claim_executions_named_returns_those_that_exist(store: Store) -> None:
    a, b = execution("a"), execution("b")
    write(store, lambda tx: (tx.insert_execution(a), tx.insert_execution(b)))
    with store.transaction() as tx:
        claimed = tx.claim_executions_named([b.arn, execution("missing").arn, a.arn])
        assert sorted(claimed, key=lambda r: r.name) == [a, b]
        assert tx.claim_executions_named([]) == []


def test_due_signals_of_many_executions_are_each_ones_due_in_order(store: Store) -> None:
    a, b, c = execution("a").arn, execution("b").arn, execution("c").arn
    write(
        store,
        lambda tx: tx.add_signals(
            [
                (a, 20.0, "a-late"),
                (b, 3.0, "b"),
                (a, 10.0, "a-first"),
                (c, 1.0, "c"),
                (a, 99.0, "a-future"),
            ]
        ),
    )
    with store.transaction() as tx:
        due = tx.due_signals_of([a, b], 20.0)
        assert tx.due_signals_of([], 20.0) == []
    by_execution: dict[str, list[str]] = {}
    for signal in due:
        by_execution.setdefault(signal.execution_arn, []).append(signal.body)
    assert by_execution == {a: ["a-first", "a-late"], b: ["b"]}


def test_update_executions_saves_each_ones_progress(store: Store) -> None:
    a, b = execution("a"), execution("b")
    write(store, lambda tx: (tx.insert_execution(a), tx.insert_execution(b)))
    done = replace(a, status="SUCCEEDED", output="1", stopped_at=5.0, event_count=4)
    moved = replace(b, snapshot='{"at": "Ship"}', event_count=7)
    write(store, lambda tx: tx.update_executions([done, moved]))
    with store.transaction() as tx:
        assert tx.get_execution(a.arn) == done
        assert tx.get_execution(b.arn) == moved


def test_update_executions_with_one_execution_twice_keeps_the_later(store: Store) -> None:
    a = execution("a")
    write(store, lambda tx: tx.insert_execution(a))
    first = replace(a, snapshot='{"at": "Charge"}', event_count=3)
    later = replace(a, snapshot='{"at": "Ship"}', event_count=5)
    write(store, lambda tx: tx.update_executions([first, later]))
    with store.transaction() as tx:
        assert tx.get_execution(a.arn) == later


#: text a batch must carry through unchanged: quotes, backslashes, control
#: characters, non-ASCII and astral characters, JSON-looking text
AWKWARD = 'say "hi" \\ back\\slash\n\ttab \u2028 é ü 漢字 🚚 {"n": [1, 2]} null'


def test_batched_rows_read_back_exactly_whatever_their_text_and_numbers(store: Store) -> None:
    record = execution("a")
    write(store, lambda tx: tx.insert_execution(record))
    when = 1_732_890_000.123_456_7
    events = [
        replace(event(record.arn, 1), details=AWKWARD, timestamp=when),
        replace(event(record.arn, 2), details="", timestamp=when + 1e-6, type=AWKWARD),
    ]
    tasks = [
        task("t1", command=AWKWARD, created_at=when, lease_until=when + 0.5, worker=AWKWARD),
        task("t2", activity_arn=None, lease_until=None, worker=None),
    ]
    progress = replace(
        record, status="FAILED", output=None, error=AWKWARD, cause=AWKWARD, stopped_at=when,
        snapshot=AWKWARD, event_count=2**31 - 1, redrive_count=1, redriven_at=when,
    )  # fmt: skip

    def batch(tx: Any) -> None:
        tx.append_events(events)
        tx.add_signals([(record.arn, when, AWKWARD), (record.arn, when, "")])
        tx.put_tasks(tasks)
        tx.update_executions([progress])

    write(store, batch)
    with store.transaction() as tx:
        assert tx.list_events(record.arn, after_id=0, limit=10, reverse=False) == events
        due = tx.due_signals(record.arn, when + 1)
        assert [(s.due_at, s.body) for s in due] == [(when, AWKWARD), (when, "")]
        assert [tx.get_task("t1"), tx.get_task("t2")] == tasks
        assert tx.get_execution(record.arn) == progress


def test_pipelined_writes_commit_with_their_transaction(store: Store) -> None:
    record = execution("a")
    write(store, lambda tx: tx.insert_execution(record))
    with store.transaction() as tx, tx.pipelined():
        tx.append_events([event(record.arn, 1), event(record.arn, 2)])
        tx.add_signals([(record.arn, 1.0, "go")])
        tx.put_tasks([task("t1")])
        tx.delete_tasks(["t1"])
    with store.transaction() as tx:
        events = tx.list_events(record.arn, after_id=0, limit=10, reverse=False)
        assert [e.id for e in events] == [1, 2]
        assert [s.body for s in tx.due_signals(record.arn, 5.0)] == ["go"]
        assert tx.get_task("t1") is None


def test_a_taken_key_in_a_pipelined_block_fails_and_rolls_back_the_transaction(
    store: Store,
) -> None:
    record = execution("a")
    write(store, lambda tx: (tx.insert_execution(record), tx.append_events([event(record.arn, 1)])))

    def clash() -> None:
        with store.transaction() as tx:
            tx.add_signals([(record.arn, 1.0, "lost")])
            with tx.pipelined():
                tx.append_events([event(record.arn, 2), event(record.arn, 1)])

    with pytest.raises(Conflict):
        clash()
    with store.transaction() as tx:
        assert tx.due_signals(record.arn, 5.0) == []
        events = tx.list_events(record.arn, after_id=0, limit=10, reverse=False)
        assert [e.id for e in events] == [1]


def test_claim_executions_takes_the_longest_waiting_first(store: Store) -> None:
    # a ready execution must not starve behind others, whatever its arn
    records = [execution(n) for n in ("a", "b", "c", "d")]
    due = {"d": 1.0, "b": 2.0, "a": 3.0, "c": 4.0}

    def setup(tx: Any) -> None:
        for record in records:
            tx.insert_execution(record)
            tx.add_signals([(record.arn, due[record.name], "go")])

    write(store, setup)
    with store.transaction() as tx:
        assert [e.name for e in tx.claim_executions(10.0, 2)] == ["d", "b"]


# ---------------------------------------------------------------------- tasks


def test_tasks_read_back_change_status_and_delete(store: Store) -> None:
    record = task("t1", kind="activity", activity_arn=activity("pack").arn)
    write(store, lambda tx: tx.put_tasks([record, task("t2")]))
    with store.transaction() as tx:
        assert tx.get_task("t1") == record
        tx.set_task_status("t1", "waiting", 1_700_000_900.0, "worker-1")
    with store.transaction() as tx:
        assert tx.get_task("t1") == replace(
            record, status="waiting", lease_until=1_700_000_900.0, worker="worker-1"
        )
        tx.set_task_status("t1", "ready", None, None)
    with store.transaction() as tx:
        assert tx.get_task("t1") == record
        tx.delete_tasks(["t1", "missing"])
    with store.transaction() as tx:
        assert tx.get_task("t1") is None
        assert tx.get_task("t2") == task("t2")


def test_a_task_token_taken_conflicts(store: Store) -> None:
    write(store, lambda tx: tx.put_tasks([task("t1")]))
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.put_tasks([task("t1", kind="http")])


def test_claim_tasks_leases_ready_tasks_of_the_given_kinds_oldest_first(store: Store) -> None:
    write(
        store,
        lambda tx: tx.put_tasks(
            [
                task("fn-new", kind="function", created_at=3.0),
                task("http", kind="http", created_at=2.0),
                task("fn-old", kind="function", created_at=1.0),
                task("act", kind="activity", created_at=0.5),
                task("cb", kind="function", status="waiting", created_at=0.1),
            ]
        ),
    )
    with store.transaction() as tx:
        claimed = tx.claim_tasks(["function", "http"], 100.0, 130.0, "w1", 2)
    assert [t.token for t in claimed] == ["fn-old", "http"]
    with store.transaction() as tx:
        for token in ("fn-old", "http"):
            stored = tx.get_task(token)
            assert stored is not None
            assert (stored.status, stored.lease_until, stored.worker) == ("running", 130.0, "w1")
        assert [t.token for t in tx.claim_tasks(["function", "http"], 100.0, 130.0, "w2", 10)] == [
            "fn-new"
        ]
        assert tx.claim_tasks(["function", "http"], 100.0, 130.0, "w2", 10) == []


def test_claim_tasks_reclaims_expired_leases_but_not_live_ones(store: Store) -> None:
    write(
        store,
        lambda tx: tx.put_tasks(
            [
                task("expired", status="running", lease_until=99.0, worker="dead"),
                task("live", status="running", lease_until=101.0, worker="alive"),
            ]
        ),
    )
    with store.transaction() as tx:
        assert [t.token for t in tx.claim_tasks(["function"], 100.0, 200.0, "w", 10)] == ["expired"]
        assert tx.get_task("live") == task(
            "live", status="running", lease_until=101.0, worker="alive"
        )
        reclaimed = tx.get_task("expired")
    assert reclaimed is not None
    assert (reclaimed.lease_until, reclaimed.worker) == (200.0, "w")


def test_claim_tasks_of_no_kinds_claims_nothing(store: Store) -> None:
    write(store, lambda tx: tx.put_tasks([task("t1")]))
    with store.transaction() as tx:
        assert tx.claim_tasks([], 100.0, 200.0, "w", 10) == []


def test_claim_activity_task_hands_out_an_activitys_tasks_first_in_first_out(store: Store) -> None:
    pack, ship = activity("pack").arn, activity("ship").arn
    write(
        store,
        lambda tx: tx.put_tasks(
            [
                task("pack-2", kind="activity", activity_arn=pack, created_at=2.0),
                task("ship-1", kind="activity", activity_arn=ship, created_at=0.5),
                task("pack-1", kind="activity", activity_arn=pack, created_at=1.0),
                task("pack-3", kind="activity", activity_arn=pack, created_at=3.0),
            ]
        ),
    )
    handed: list[str] = []
    for _ in range(4):
        with store.transaction() as tx:
            claimed = tx.claim_activity_task(pack, 500.0, "poller")
        if claimed is None:
            break
        handed.append(claimed.token)
    assert handed == ["pack-1", "pack-2", "pack-3"]
    with store.transaction() as tx:
        running = tx.get_task("pack-1")
        assert running is not None
        assert (running.status, running.lease_until, running.worker) == (
            "running",
            500.0,
            "poller",
        )
        assert tx.get_task("ship-1") == task(
            "ship-1", kind="activity", activity_arn=ship, created_at=0.5
        )


# ---------------------------------------------------------------------- transactions, migrations


def test_a_transaction_that_raises_leaves_nothing_behind(store: Store) -> None:
    existing = execution("existing")
    write(store, lambda tx: tx.insert_execution(existing))
    new = execution("new")

    class Boom(Exception):
        pass

    def write_everything_then_fail(tx: Any) -> None:
        tx.insert_machine(machine())
        tx.insert_execution(new)
        tx.update_execution(replace(existing, status="SUCCEEDED"))
        tx.append_events([event(new.arn, 1)])
        tx.add_signals([(new.arn, 1.0, "start")])
        tx.put_tasks([task("t1", execution_arn=new.arn)])
        tx.set_tags(machine().arn, {"k": "v"})
        tx.insert_activity(activity("pack"))
        raise Boom

    with pytest.raises(Boom), store.transaction() as tx:
        write_everything_then_fail(tx)
    with store.transaction() as tx:
        assert tx.get_machine(machine().arn) is None
        assert tx.get_execution(new.arn) is None
        assert tx.get_execution(existing.arn) == existing
        assert tx.list_events(new.arn, after_id=0, limit=10, reverse=False) == []
        assert tx.next_due() is None
        assert tx.get_task("t1") is None
        assert tx.list_tags(machine().arn) == {}
        assert tx.list_activities(None, 10) == []


def test_reopening_a_store_keeps_its_data(open_stores: Callable[[], Store]) -> None:
    first = open_stores()
    write(first, lambda tx: (tx.insert_machine(machine()), tx.add_signals([("x", 1.0, "s")])))
    first.close()
    again = open_stores()
    also = open_stores()  # a second open while one is live migrates nothing twice
    with again.transaction() as tx:
        assert tx.get_machine(machine().arn) == machine()
        assert tx.next_due() == 1.0
    with also.transaction() as tx:
        assert tx.list_machines(None, 10) == [machine()]


def test_another_store_on_the_same_url_in_another_thread_sees_committed_data(
    open_stores: Callable[[], Store],
) -> None:
    writer, reader = open_stores(), open_stores()
    write(writer, lambda tx: tx.insert_execution(execution("a")))

    def read() -> ExecutionRecord | None:
        with reader.transaction() as tx:
            return tx.get_execution(execution("a").arn)

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(read).result(timeout=30) == execution("a")


def test_open_store_rejects_an_unknown_url_naming_the_accepted_forms() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("mysql://root@localhost/db")
    assert "sqlite:///PATH" in str(caught.value)
    assert "postgresql://USER@HOST:PORT/DB" in str(caught.value)


def test_open_store_reports_an_unreachable_database_as_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")


# ---------------------------------------------------------------------- PostgreSQL: many nodes


def _due_executions(store: Store, count: int) -> list[ExecutionRecord]:
    records = [execution(f"e{i:02d}") for i in range(count)]

    def setup(tx: Any) -> None:
        for record in records:
            tx.insert_execution(record)
        tx.add_signals([(r.arn, 1.0, "go") for r in records])

    write(store, setup)
    return records


def _claim_together(stores: list[Store], claim: Callable[[Any], list[str]]) -> list[list[str]]:
    """Each store claims in its own thread; nobody commits before everyone has claimed."""
    barrier = threading.Barrier(len(stores))

    def run(store: Store) -> list[str]:
        with store.transaction() as tx:
            barrier.wait(timeout=30)
            claimed = claim(tx)
            barrier.wait(timeout=30)
        return claimed

    with ThreadPoolExecutor(len(stores)) as pool:
        futures = [pool.submit(run, s) for s in stores]
        return [f.result(timeout=60) for f in futures]


def test_postgres_nodes_claiming_executions_at_once_never_share_one(
    postgres_schema_url: str,
) -> None:
    nodes = [open_store(postgres_schema_url) for _ in range(3)]
    try:
        records = _due_executions(nodes[0], 12)
        claims = _claim_together(nodes, lambda tx: [e.arn for e in tx.claim_executions(5.0, 4)])
    finally:
        for node in nodes:
            node.close()
    assert [len(c) for c in claims] == [4, 4, 4]
    assert sorted(a for c in claims for a in c) == sorted(r.arn for r in records)


def test_postgres_nodes_claiming_tasks_at_once_never_share_one(postgres_schema_url: str) -> None:
    nodes = [open_store(postgres_schema_url) for _ in range(3)]
    try:
        tokens = [f"t{i:02d}" for i in range(12)]
        write(
            nodes[0],
            lambda tx: tx.put_tasks([task(t, created_at=float(i)) for i, t in enumerate(tokens)]),
        )
        claims = _claim_together(
            nodes,
            lambda tx: [t.token for t in tx.claim_tasks(["function"], 10.0, 60.0, "w", 4)],
        )
    finally:
        for node in nodes:
            node.close()
    assert [len(c) for c in claims] == [4, 4, 4]
    assert sorted(t for c in claims for t in c) == tokens


def test_postgres_pollers_claiming_an_activity_at_once_never_share_a_task(
    postgres_schema_url: str,
) -> None:
    nodes = [open_store(postgres_schema_url) for _ in range(3)]
    pack = activity("pack").arn
    try:
        write(
            nodes[0],
            lambda tx: tx.put_tasks(
                [task(f"p{i}", kind="activity", activity_arn=pack, created_at=i) for i in range(3)]
            ),
        )

        def claim(tx: Any) -> list[str]:
            claimed = tx.claim_activity_task(pack, 60.0, "poller")
            return [] if claimed is None else [claimed.token]

        claims = _claim_together(nodes, claim)
    finally:
        for node in nodes:
            node.close()
    assert sorted(t for c in claims for t in c) == ["p0", "p1", "p2"]


def _claim_until(store: Store, claim: Callable[[Any], list[str]], want: int) -> list[str]:
    """Claims again until ``want`` rows come back: the server notices a lost client promptly,
    but not synchronously with the client closing its socket."""
    deadline = time.monotonic() + 10
    while True:
        with store.transaction() as tx:
            claimed = claim(tx)
        if len(claimed) >= want or time.monotonic() > deadline:
            return claimed
        time.sleep(0.05)


def test_postgres_claims_of_a_node_that_dies_mid_transaction_go_to_another(
    postgres_schema_url: str,
) -> None:
    dying, survivor = open_store(postgres_schema_url), open_store(postgres_schema_url)
    try:
        records = _due_executions(survivor, 3)
        write(survivor, lambda tx: tx.put_tasks([task("t1"), task("t2")]))
        transaction = dying.transaction()
        tx = transaction.__enter__()
        assert len(tx.claim_executions(5.0, 10)) == 3
        assert len(tx.claim_tasks(["function"], 10.0, 1_000.0, "dying", 10)) == 2
        with survivor.transaction() as other:
            assert other.claim_executions(5.0, 10) == []
            assert other.claim_tasks(["function"], 10.0, 60.0, "survivor", 10) == []
        dying.close()  # the node is gone: its transaction never commits
        executions = _claim_until(
            survivor, lambda t: [e.arn for e in t.claim_executions(5.0, 10)], 3
        )
        tasks = _claim_until(
            survivor,
            lambda t: [k.token for k in t.claim_tasks(["function"], 10.0, 60.0, "survivor", 10)],
            2,
        )
        with pytest.raises(StoreError):
            transaction.__exit__(None, None, None)
    finally:
        dying.close()
        survivor.close()
    assert sorted(executions) == sorted(r.arn for r in records)
    assert tasks == ["t1", "t2"]


def test_postgres_a_batch_too_large_for_one_statement_goes_in_several_in_order(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One statement's rows travel as one JSON array, which PostgreSQL caps in
    # size; a larger batch is split, and must read back as if sent whole.
    from dirigent.store import postgres

    monkeypatch.setattr(postgres, "MAX_ARRAY_CHARS", 300)
    store = open_store(postgres_schema_url)
    try:
        record = execution("a")
        events = [replace(event(record.arn, n), details=AWKWARD) for n in range(1, 31)]
        signals = [(record.arn, 1.0, f"signal-{n:02}") for n in range(30)]
        write(store, lambda tx: (tx.append_events(events), tx.add_signals(signals)))
        with store.transaction() as tx:
            assert tx.list_events(record.arn, after_id=0, limit=50, reverse=False) == events
            assert [s.body for s in tx.due_signals(record.arn, 5.0)] == [b for _, _, b in signals]
        # A taken key in a later part is still a conflict, piped or not.
        more = [event(record.arn, n) for n in range(31, 41)] + [event(record.arn, 30)]
        with pytest.raises(Conflict), store.transaction() as tx:
            tx.append_events(more)
        with pytest.raises(Conflict), store.transaction() as tx, tx.pipelined():
            tx.append_events(more)
        with store.transaction() as tx:
            assert len(tx.list_events(record.arn, after_id=0, limit=50, reverse=False)) == 30
    finally:
        store.close()


def test_postgres_named_claims_pass_over_executions_another_node_holds(
    postgres_schema_url: str,
) -> None:
    # A node delivering results must not wait for, nor advance, an execution
    # another node is advancing.
    holder, other = open_store(postgres_schema_url), open_store(postgres_schema_url)
    try:
        a, b = execution("a"), execution("b")
        write(holder, lambda tx: (tx.insert_execution(a), tx.insert_execution(b)))
        with holder.transaction() as held:
            assert held.claim_execution(a.arn) == a
            with other.transaction() as tx:
                assert tx.claim_executions_named([a.arn, b.arn]) == [b]
    finally:
        holder.close()
        other.close()


# ------------------------------------------------------------------ SQLite: one file, many stores


def test_sqlite_a_second_store_on_the_file_waits_for_the_writer_then_sees_its_commit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer, reader = open_store(url), open_store(url)
    started = threading.Event()

    def read() -> ExecutionRecord | None:
        started.set()
        with reader.transaction() as tx:  # one writer at a time: this waits
            return tx.get_execution(execution("a").arn)

    try:
        with ThreadPoolExecutor(1) as pool:
            with writer.transaction() as tx:
                tx.insert_execution(execution("a"))
                seen = pool.submit(read)
                assert started.wait(timeout=10)
                time.sleep(0.1)
                assert not seen.done()
            assert seen.result(timeout=30) == execution("a")
    finally:
        writer.close()
        reader.close()
