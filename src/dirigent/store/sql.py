"""The port's operations in SQL, written once for SQLite and PostgreSQL.

Statements use ``?`` placeholders; a :class:`Dialect` rewrites what differs
between the two databases (placeholders, the row-locking claim clause, column
types in migrations). Nothing outside ``dirigent.store`` runs SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar

from dirigent.store.port import batched
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
from dirigent.store.schema import MIGRATIONS

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    placeholder: str
    #: appended to a SELECT that claims rows of ``{table}``
    lock_clause: str
    id_column: str
    blob: str
    float: str

    def sql(self, statement: str) -> str:
        if self.placeholder == "?":
            return statement
        return statement.replace("?", self.placeholder)

    def lock(self, table: str) -> str:
        return self.lock_clause.format(table=table)

    def migration(self, statement: str) -> str:
        return statement.format(id=self.id_column, blob=self.blob, float=self.float)


SQLITE = Dialect("sqlite", "?", "", "INTEGER PRIMARY KEY", "TEXT", "REAL")
POSTGRES = Dialect(
    "postgresql",
    "%s",
    " FOR UPDATE OF {table} SKIP LOCKED",
    "BIGSERIAL PRIMARY KEY",
    "TEXT",
    "DOUBLE PRECISION",
)

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
RunMany = Callable[[str, Sequence[Sequence[Any]]], None]


#: each record type's columns, worked out once: every row written asks, and
#: dataclasses.fields() is not cheap
_COLUMNS: Mapping[type[Any], tuple[str, ...]] = {
    record_type: tuple(f.name for f in fields(record_type))
    for record_type in (
        ActivityRecord, AliasRecord, EventRecord, ExecutionRecord, MachineRecord, SignalRecord,
        TaskRecord, VersionRecord,
    )
}  # fmt: skip


def _columns(record_type: type[Any]) -> tuple[str, ...]:
    return _COLUMNS[record_type]


def _insert(table: str, record_type: type[Any]) -> str:
    names = _columns(record_type)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _select(table: str, record_type: type[Any]) -> str:
    return f"SELECT {', '.join(_columns(record_type))} FROM {table}"


#: each record type's row, read in one C call: rows are built on every transition
_ROW: Mapping[type[Any], Callable[[Any], tuple[Any, ...]]] = {
    record_type: attrgetter(*names) for record_type, names in _COLUMNS.items()
}


def _values(record: Any) -> tuple[Any, ...]:
    return _ROW[type(record)](record)


_EVENT_COLUMNS = "execution_arn, id, previous_id, ts, type, details"
_EXECUTION_PROGRESS = (
    "status",
    "output",
    "error",
    "cause",
    "stopped_at",
    "snapshot",
    "event_count",
    "redrive_count",
    "redriven_at",
)

# The statements the engine runs for many rows at once, named so that an
# adapter can run each in a form of its own (PostgreSQL: one statement over a
# JSON array of the rows, see postgres.py). Each takes one row's values, in
# this order.
INSERT_EVENTS = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
#: the columns UPDATE_PROGRESS sets, then the key it matches on
PROGRESS_COLUMNS = (*_EXECUTION_PROGRESS, "arn")
UPDATE_PROGRESS = (
    f"UPDATE executions SET {', '.join(f'{n} = ?' for n in _EXECUTION_PROGRESS)} WHERE arn = ?"
)
_PROGRESS_ROW = attrgetter(*PROGRESS_COLUMNS)
INSERT_SIGNALS = "INSERT INTO signals (execution_arn, due_at, body) VALUES (?, ?, ?)"
DELETE_SIGNALS = "DELETE FROM signals WHERE id = ?"
INSERT_TASKS = _insert("tasks", TaskRecord)
INSERT_EXECUTIONS = _insert("executions", ExecutionRecord)
DELETE_TASKS = "DELETE FROM tasks WHERE token = ?"


class SqlTransaction:
    """Every operation of the port over one open database transaction."""

    def __init__(
        self,
        dialect: Dialect,
        run: Run,
        run_many: RunMany,
        pipeline: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._dialect = dialect
        #: machines read in this transaction: a worker's transaction starts many
        #: executions, mostly of one machine, and on PostgreSQL each read is a
        #: round trip. A write of the machine in this transaction forgets it.
        self._machines: dict[str, MachineRecord | None] = {}
        self._run_raw = run
        self._run_many_raw = run_many
        self._pipeline = pipeline

    def pipelined(self) -> AbstractContextManager[None]:
        return self._pipeline()

    def _run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run_raw(self._dialect.sql(statement), params)

    def _many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._run_many_raw(self._dialect.sql(statement), rows)

    def _one(self, record_type: type[R], statement: str, params: Sequence[Any]) -> R | None:
        rows = self._run(statement, params)
        return record_type(*rows[0]) if rows else None

    def _all(self, record_type: type[R], statement: str, params: Sequence[Any]) -> list[R]:
        return [record_type(*row) for row in self._run(statement, params)]

    # ------------------------------------------------------------------ catalog

    def insert_machine(self, record: MachineRecord) -> None:
        self._machines.pop(record.arn, None)
        self._run(_insert("state_machines", MachineRecord), _values(record))

    def update_machine(self, record: MachineRecord) -> None:
        self._machines.pop(record.arn, None)
        names = [n for n in _columns(MachineRecord) if n != "arn"]
        assignments = ", ".join(f"{n} = ?" for n in names)
        params = [getattr(record, n) for n in names] + [record.arn]
        self._run(f"UPDATE state_machines SET {assignments} WHERE arn = ?", params)

    def get_machine(self, arn: str) -> MachineRecord | None:
        if arn in self._machines:
            return self._machines[arn]
        query = _select("state_machines", MachineRecord) + " WHERE arn = ?"
        record = self._machines[arn] = self._one(MachineRecord, query, (arn,))
        return record

    def list_machines(self, after: str | None, limit: int) -> list[MachineRecord]:
        query = _select("state_machines", MachineRecord) + " WHERE arn > ? ORDER BY arn LIMIT ?"
        return self._all(MachineRecord, query, (after or "", limit))

    def delete_machine(self, arn: str) -> None:
        self._machines.pop(arn, None)
        # The machine's tags go with it, and so do its versions' and aliases': a
        # machine created again under the same name must not inherit them.
        for table in ("state_machine_versions", "state_machine_aliases"):
            self._run(
                f"DELETE FROM tags WHERE resource_arn IN "
                f"(SELECT arn FROM {table} WHERE machine_arn = ?)",
                (arn,),
            )
        self._run("DELETE FROM tags WHERE resource_arn = ?", (arn,))
        self._run("DELETE FROM state_machines WHERE arn = ?", (arn,))
        self._run("DELETE FROM state_machine_versions WHERE machine_arn = ?", (arn,))
        self._run("DELETE FROM state_machine_aliases WHERE machine_arn = ?", (arn,))

    def insert_version(self, record: VersionRecord) -> None:
        self._run(_insert("state_machine_versions", VersionRecord), _values(record))

    def get_version(self, arn: str) -> VersionRecord | None:
        query = _select("state_machine_versions", VersionRecord) + " WHERE arn = ?"
        return self._one(VersionRecord, query, (arn,))

    def list_versions(self, machine_arn: str) -> list[VersionRecord]:
        query = (
            _select("state_machine_versions", VersionRecord)
            + " WHERE machine_arn = ? ORDER BY version DESC"
        )
        return self._all(VersionRecord, query, (machine_arn,))

    def delete_version(self, arn: str) -> None:
        self._run("DELETE FROM state_machine_versions WHERE arn = ?", (arn,))
        self._run("DELETE FROM tags WHERE resource_arn = ?", (arn,))

    def put_alias(self, record: AliasRecord) -> None:
        self._run("DELETE FROM state_machine_aliases WHERE arn = ?", (record.arn,))
        self._run(_insert("state_machine_aliases", AliasRecord), _values(record))

    def get_alias(self, arn: str) -> AliasRecord | None:
        query = _select("state_machine_aliases", AliasRecord) + " WHERE arn = ?"
        return self._one(AliasRecord, query, (arn,))

    def list_aliases(self, machine_arn: str) -> list[AliasRecord]:
        query = (
            _select("state_machine_aliases", AliasRecord) + " WHERE machine_arn = ? ORDER BY arn"
        )
        return self._all(AliasRecord, query, (machine_arn,))

    def delete_alias(self, arn: str) -> None:
        self._run("DELETE FROM state_machine_aliases WHERE arn = ?", (arn,))
        self._run("DELETE FROM tags WHERE resource_arn = ?", (arn,))

    def insert_activity(self, record: ActivityRecord) -> None:
        self._run(_insert("activities", ActivityRecord), _values(record))

    def get_activity(self, arn: str) -> ActivityRecord | None:
        return self._one(
            ActivityRecord, _select("activities", ActivityRecord) + " WHERE arn = ?", (arn,)
        )

    def list_activities(self, after: str | None, limit: int) -> list[ActivityRecord]:
        query = _select("activities", ActivityRecord) + " WHERE arn > ? ORDER BY arn LIMIT ?"
        return self._all(ActivityRecord, query, (after or "", limit))

    def delete_activity(self, arn: str) -> None:
        self._run("DELETE FROM activities WHERE arn = ?", (arn,))
        self._run("DELETE FROM tags WHERE resource_arn = ?", (arn,))

    def set_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        self.remove_tags(resource_arn, list(tags))
        self._many(
            "INSERT INTO tags (resource_arn, key, value) VALUES (?, ?, ?)",
            [(resource_arn, k, v) for k, v in tags.items()],
        )

    def remove_tags(self, resource_arn: str, keys: Sequence[str]) -> None:
        self._many(
            "DELETE FROM tags WHERE resource_arn = ? AND key = ?", [(resource_arn, k) for k in keys]
        )

    def list_tags(self, resource_arn: str) -> dict[str, str]:
        rows = self._run(
            "SELECT key, value FROM tags WHERE resource_arn = ? ORDER BY key", (resource_arn,)
        )
        return {str(k): str(v) for k, v in rows}

    # ------------------------------------------------------------------ executions

    def insert_execution(self, record: ExecutionRecord) -> None:
        self._run(_insert("executions", ExecutionRecord), _values(record))

    def insert_executions(self, records: Sequence[ExecutionRecord]) -> None:
        self._many(INSERT_EXECUTIONS, [_values(record) for record in records])

    def get_execution(self, arn: str) -> ExecutionRecord | None:
        query = _select("executions", ExecutionRecord) + " WHERE arn = ?"
        return self._one(ExecutionRecord, query, (arn,))

    def update_execution(self, record: ExecutionRecord) -> None:
        # Only what a transition can change: rewriting the input and definition
        # on every transition would multiply what each commit writes.
        self._run(UPDATE_PROGRESS, _PROGRESS_ROW(record))

    def update_executions(self, records: Sequence[ExecutionRecord]) -> None:
        self._many(UPDATE_PROGRESS, [_PROGRESS_ROW(record) for record in records])

    def list_executions(
        self,
        *,
        machine_arn: str | None,
        status: str | None,
        before: tuple[float, str] | None,
        limit: int,
    ) -> list[ExecutionRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if machine_arn is not None:
            clauses.append("machine_arn = ?")
            params.append(machine_arn)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if before is not None:
            clauses.append("(started_at < ? OR (started_at = ? AND arn < ?))")
            params.extend([before[0], before[0], before[1]])
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            _select("executions", ExecutionRecord)
            + where
            + " ORDER BY started_at DESC, arn DESC LIMIT ?"
        )
        return self._all(ExecutionRecord, query, [*params, limit])

    def append_events(self, events: Sequence[EventRecord]) -> None:
        self._many(INSERT_EVENTS, [_values(e) for e in events])

    def list_events(
        self, execution_arn: str, *, after_id: int, limit: int, reverse: bool
    ) -> list[EventRecord]:
        if reverse:
            query = (
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_arn = ? AND id < ? "
                "ORDER BY id DESC LIMIT ?"
            )
            bound = after_id if after_id > 0 else 2**62
            return self._all(EventRecord, query, (execution_arn, bound, limit))
        query = (
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE execution_arn = ? AND id > ? "
            "ORDER BY id LIMIT ?"
        )
        return self._all(EventRecord, query, (execution_arn, after_id, limit))

    # ------------------------------------------------------------------ work

    def add_signals(self, signals: Sequence[tuple[str, float, str]]) -> None:
        self._many(INSERT_SIGNALS, signals)

    def claim_executions(self, now: float, limit: int) -> list[ExecutionRecord]:
        # Longest waiting first, so no execution starves behind others. The LIMIT
        # sits on the locking query, not in a subquery: with SKIP LOCKED, rows
        # another node holds are passed over and the next due ones taken instead.
        columns = ", ".join(f"executions.{n}" for n in _columns(ExecutionRecord))
        query = (
            f"SELECT {columns} FROM executions JOIN (SELECT execution_arn, MIN(due_at) AS due"
            " FROM signals WHERE due_at <= ? GROUP BY execution_arn) AS ready"
            " ON ready.execution_arn = executions.arn"
            " ORDER BY ready.due, executions.arn LIMIT ?" + self._dialect.lock("executions")
        )
        return self._all(ExecutionRecord, query, (now, limit))

    def claim_execution(self, arn: str) -> ExecutionRecord | None:
        query = (
            _select("executions", ExecutionRecord)
            + " WHERE arn = ?"
            + self._dialect.lock("executions")
        )
        return self._one(ExecutionRecord, query, (arn,))

    def claim_executions_named(self, arns: Sequence[str]) -> list[ExecutionRecord]:
        claimed: list[ExecutionRecord] = []
        for chunk in batched(list(arns), 500):
            query = (
                _select("executions", ExecutionRecord)
                + f" WHERE arn IN ({', '.join('?' * len(chunk))})"
                + self._dialect.lock("executions")
            )
            claimed.extend(self._all(ExecutionRecord, query, chunk))
        return claimed

    def due_signals_of(self, execution_arns: Sequence[str], now: float) -> list[SignalRecord]:
        due: list[SignalRecord] = []
        for chunk in batched(list(execution_arns), 500):
            query = (
                "SELECT id, execution_arn, due_at, body FROM signals WHERE execution_arn IN "
                f"({', '.join('?' * len(chunk))}) AND due_at <= ? ORDER BY due_at, id"
            )
            due.extend(self._all(SignalRecord, query, [*chunk, now]))
        return due

    def due_signals(self, execution_arn: str, now: float) -> list[SignalRecord]:
        query = (
            "SELECT id, execution_arn, due_at, body FROM signals "
            "WHERE execution_arn = ? AND due_at <= ? ORDER BY due_at, id"
        )
        return self._all(SignalRecord, query, (execution_arn, now))

    def delete_signals(self, ids: Sequence[int]) -> None:
        self._many(DELETE_SIGNALS, [(i,) for i in ids])

    def next_due(self) -> float | None:
        rows = self._run("SELECT MIN(due_at) FROM signals")
        value = rows[0][0] if rows else None
        return float(value) if value is not None else None

    def put_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        self._many(INSERT_TASKS, [_values(t) for t in tasks])

    def get_task(self, token: str) -> TaskRecord | None:
        return self._one(TaskRecord, _select("tasks", TaskRecord) + " WHERE token = ?", (token,))

    def set_task_status(
        self, token: str, status: str, lease_until: float | None, worker: str | None
    ) -> None:
        self._run(
            "UPDATE tasks SET status = ?, lease_until = ?, worker = ? WHERE token = ?",
            (status, lease_until, worker, token),
        )

    def delete_tasks(self, tokens: Sequence[str]) -> None:
        for chunk in batched(list(tokens), 500):
            self._many(DELETE_TASKS, [(t,) for t in chunk])

    def claim_tasks(
        self, kinds: Sequence[str], now: float, lease_until: float, worker: str, limit: int
    ) -> list[TaskRecord]:
        if not kinds:
            return []
        marks = ", ".join("?" * len(kinds))
        query = (
            _select("tasks", TaskRecord) + f" WHERE kind IN ({marks}) AND (status = 'ready' OR "
            "(status = 'running' AND lease_until < ?)) ORDER BY created_at, token LIMIT ?"
            + self._dialect.lock("tasks")
        )
        claimed = self._all(TaskRecord, query, [*kinds, now, limit])
        self._many(
            "UPDATE tasks SET status = 'running', lease_until = ?, worker = ? WHERE token = ?",
            [(lease_until, worker, t.token) for t in claimed],
        )
        return claimed

    def claim_activity_task(
        self, activity_arn: str, lease_until: float, worker: str
    ) -> TaskRecord | None:
        query = (
            _select("tasks", TaskRecord)
            + " WHERE activity_arn = ? AND status = 'ready' ORDER BY created_at, token LIMIT 1"
            + self._dialect.lock("tasks")
        )
        task = self._one(TaskRecord, query, (activity_arn,))
        if task is not None:
            self.set_task_status(task.token, "running", lease_until, worker)
        return task


def migrate(dialect: Dialect, run: Run) -> None:
    """Apply every migration newer than the recorded version (caller holds a transaction)."""
    run(
        dialect.sql(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            f"applied_at {dialect.float} NOT NULL)"
        ),
        (),
    )
    rows = run("SELECT MAX(version) FROM schema_version", ())
    current = rows[0][0] or 0
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            run(dialect.migration(statement), ())
        run(
            dialect.sql("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)"),
            (version,),
        )
