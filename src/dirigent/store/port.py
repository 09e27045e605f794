"""The persistence port: what the engine asks of a store, and nothing more.

A store hands out transactions. Everything the engine writes for one durable
transition (history events, the folded snapshot, the signals and tasks it
enqueues, the signals it consumed) goes through one transaction and commits
together or not at all. The port is narrow on purpose: three small groups of
operations (the catalog, executions with their history, and the work queue),
each covered by the contract suite in ``tests/contract`` that every adapter
passes.

Errors: :class:`Conflict` when a unique key is taken; adapters translate their
driver's exceptions into it so the engine never sees a driver type. A single
insert that conflicts writes nothing and leaves the transaction usable (read
the existing row and go on); a batch that conflicts (events, signals, tasks,
tags) may have written part of itself, so let its transaction roll back.
:class:`StoreError` when the database cannot be reached or a transaction did
not commit (connection lost, deadlock); the whole transaction may be retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from dirigent.errors import DirigentError
from dirigent.store.records import (
    ActivityRecord,
    AliasRecord,
    EventRecord,
    ExecutionRecord,
    MachineRecord,
    SignalRecord,
    TaskRecord,
    VersionRecord,
)


class StoreError(DirigentError):
    """A store could not be opened or used (bad URL, unreachable database)."""


class Conflict(StoreError):
    """A row with the same unique key exists already."""


class CatalogTx(Protocol):
    def insert_machine(self, record: MachineRecord) -> None: ...
    def update_machine(self, record: MachineRecord) -> None: ...
    def get_machine(self, arn: str) -> MachineRecord | None: ...
    def list_machines(self, after: str | None, limit: int) -> list[MachineRecord]: ...
    def delete_machine(self, arn: str) -> None: ...
    def insert_version(self, record: VersionRecord) -> None: ...
    def get_version(self, arn: str) -> VersionRecord | None: ...
    def list_versions(self, machine_arn: str) -> list[VersionRecord]: ...
    def delete_version(self, arn: str) -> None: ...
    def put_alias(self, record: AliasRecord) -> None: ...
    def get_alias(self, arn: str) -> AliasRecord | None: ...
    def list_aliases(self, machine_arn: str) -> list[AliasRecord]: ...
    def delete_alias(self, arn: str) -> None: ...
    def insert_activity(self, record: ActivityRecord) -> None: ...
    def get_activity(self, arn: str) -> ActivityRecord | None: ...
    def list_activities(self, after: str | None, limit: int) -> list[ActivityRecord]: ...
    def delete_activity(self, arn: str) -> None: ...
    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None: ...
    def remove_tags(self, resource_arn: str, keys: Sequence[str]) -> None: ...
    def list_tags(self, resource_arn: str) -> dict[str, str]: ...


class ExecutionTx(Protocol):
    def insert_execution(self, record: ExecutionRecord) -> None: ...
    def insert_executions(self, records: Sequence[ExecutionRecord]) -> None:
        """:meth:`insert_execution` for many executions, in one statement.

        A key taken already (or twice in ``records``) raises :class:`Conflict`;
        the transaction must then be rolled back: which rows went in is not said.
        """
        ...

    def get_execution(self, arn: str) -> ExecutionRecord | None: ...
    def update_execution(self, record: ExecutionRecord) -> None:
        """Save an execution's progress: status, result, snapshot, event count, redrives.

        What never changes after the start (input, definition, names) is not rewritten.
        """
        ...

    def update_executions(self, records: Sequence[ExecutionRecord]) -> None:
        """:meth:`update_execution` for many executions, in one statement."""
        ...

    def list_executions(
        self,
        *,
        machine_arn: str | None,
        status: str | None,
        before: tuple[float, str] | None,
        limit: int,
    ) -> list[ExecutionRecord]: ...
    def append_events(self, events: Sequence[EventRecord]) -> None: ...
    def list_events(
        self, execution_arn: str, *, after_id: int, limit: int, reverse: bool
    ) -> list[EventRecord]: ...


class WorkTx(Protocol):
    def add_signals(self, signals: Sequence[tuple[str, float, str]]) -> None:
        """Enqueue ``(execution_arn, due_at, body)`` signals."""
        ...

    def claim_executions(self, now: float, limit: int) -> list[ExecutionRecord]:
        """Executions with a signal due by ``now``, longest waiting first, locked
        for this transaction.

        Another transaction running at the same time never gets the same
        execution (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one writer).
        Read the signals with :meth:`due_signals` after the claim: a transaction
        that committed a moment before may have consumed them already.
        """
        ...

    def claim_execution(self, arn: str) -> ExecutionRecord | None:
        """One execution, locked for this transaction; ``None`` if it is missing or taken."""
        ...

    def claim_executions_named(self, arns: Sequence[str]) -> list[ExecutionRecord]:
        """:meth:`claim_execution` for many executions in one statement: those of
        ``arns`` that exist and no other transaction holds, in no particular order."""
        ...

    def due_signals(self, execution_arn: str, now: float) -> list[SignalRecord]: ...
    def due_signals_of(self, execution_arns: Sequence[str], now: float) -> list[SignalRecord]:
        """:meth:`due_signals` of many executions in one statement, each execution's
        in due time, then id, order."""
        ...

    def delete_signals(self, ids: Sequence[int]) -> None: ...
    def next_due(self) -> float | None: ...
    def put_tasks(self, tasks: Sequence[TaskRecord]) -> None: ...
    def get_task(self, token: str) -> TaskRecord | None: ...
    def set_task_status(
        self, token: str, status: str, lease_until: float | None, worker: str | None
    ) -> None: ...
    def delete_tasks(self, tokens: Sequence[str]) -> None: ...
    def claim_tasks(
        self, kinds: Sequence[str], now: float, lease_until: float, worker: str, limit: int
    ) -> list[TaskRecord]:
        """Ready tasks of ``kinds`` (or running ones whose lease expired), now leased."""
        ...

    def claim_activity_task(
        self, activity_arn: str, lease_until: float, worker: str
    ) -> TaskRecord | None: ...


class Transaction(CatalogTx, ExecutionTx, WorkTx, Protocol):
    """One database transaction with every group of operations."""

    def pipelined(self) -> AbstractContextManager[None]:
        """A block of writes that may travel to the database together, without
        waiting for each statement's answer (one round trip, not one each).

        Only batch writes belong inside (events, signals, tasks, executions'
        progress): a failure in the block, a taken key included, surfaces by its
        end as an error for the whole transaction, which must then roll back.
        """
        ...


class Store(Protocol):
    url: str

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction that commits when the block ends and rolls back on an exception."""
        ...

    def close(self) -> None: ...


def batched(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
