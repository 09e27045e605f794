"""PostgreSQL, for many engine nodes sharing one database.

Each thread gets its own connection (psycopg connections are not shared
between concurrent transactions). Claims lock rows with ``FOR UPDATE SKIP
LOCKED``: a node that dies mid-transition holds its locks only until the
database notices the connection is gone and rolls the transaction back, after
which another node claims the same work; nothing is applied twice.

The engine writes a batch of transitions as a few statements over many rows
(events, checkpoints, signals, tasks). Run row by row, each row costs the
server a statement of its own; here each such statement becomes one over
one JSON array of all the rows, so a batch costs one statement per kind.

A failed statement aborts a whole PostgreSQL transaction, where SQLite fails
only the statement. So that a :class:`Conflict` leaves the transaction usable
on both (``StartExecution`` reads the existing execution after one), every
``INSERT`` runs with ``ON CONFLICT DO NOTHING`` and a row that was not written
is reported as the conflict. A lost connection or an aborted transaction
(deadlock, serialization failure) comes out as a :class:`StoreError`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
from psycopg import errors as pg_errors

from dirigent.store import sql
from dirigent.store.port import Conflict, StoreError, Transaction
from dirigent.store.sql import POSTGRES, SqlTransaction, migrate

#: the advisory lock key that serializes migrations between nodes starting together
_MIGRATION_LOCK = 0x0D1261E7

_INSERT = "INSERT INTO "
_SKIP_TAKEN = " ON CONFLICT DO NOTHING"


def _skip_taken(statement: str) -> tuple[str, bool]:
    """The statement with taken keys skipped, and whether it is an insert."""
    if statement.startswith(_INSERT):
        return statement + _SKIP_TAKEN, True
    return statement, False


def _conflict(statement: str) -> Conflict:
    table = statement.removeprefix(_INSERT).split(" ", 1)[0]
    return Conflict(f"a row with the same key exists already in {table}")


#: rows go to the server as one JSON text, read there as jsonb (parsed once, where
#: json is scanned again for every column): psycopg adapts a Python list to an
#: array element by element, which costs more than executemany saves
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class _Columnar:
    """A statement for many rows, as one statement over all the rows in one JSON array."""

    statement: str
    #: the last column is a key and, for an UPDATE ... FROM, must not repeat: the
    #: server would apply any one of the rows, where row by row the last wins
    keyed: bool = False

    def arrays(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        """The rows as JSON arrays, one statement's worth each, in order."""
        if self.keyed:
            rows = list({row[-1]: row for row in rows}.values())
        return _split(rows)


#: the most characters one statement's array may have. PostgreSQL refuses a
#: jsonb value over 256 MiB, and a character takes up to 4 bytes in UTF-8: a
#: batch of payload-sized rows (256 KiB each) could reach that
MAX_ARRAY_CHARS = 32 * 2**20


def _split(rows: Sequence[Sequence[Any]]) -> list[str]:
    text = _encode(rows)
    if len(text) <= MAX_ARRAY_CHARS or len(rows) < 2:
        return [text]
    half = len(rows) // 2
    return _split(rows[:half]) + _split(rows[half:])


def _rows(types: Sequence[str]) -> str:
    """A SELECT of the rows of a JSON array of arrays, column i cast to types[i], in
    the array's order (signals take their ids, and so their order, from it)."""
    columns = ", ".join(
        f"r->>{i}" if t == "text" else f"(r->>{i})::{t}" for i, t in enumerate(types)
    )
    rows = "jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(r, n)"
    return f"SELECT {columns} FROM {rows} ORDER BY n"


def _insert_columnar(row_statement: str, types: Sequence[str]) -> _Columnar:
    head = row_statement.split(" VALUES ", 1)[0]
    return _Columnar(f"{head} {_rows(types)}")


def _update_columnar(table: str, columns: Sequence[str], types: Sequence[str]) -> _Columnar:
    *values, key = columns
    assignments = ", ".join(f"{c} = v.{c}" for c in values)
    return _Columnar(
        f"UPDATE {table} SET {assignments} FROM ({_rows(types)}) AS v({', '.join(columns)})"
        f" WHERE {table}.{key} = v.{key}",
        keyed=True,
    )


def _delete_columnar(table: str, key: str, key_type: str) -> _Columnar:
    return _Columnar(f"DELETE FROM {table} WHERE {key} IN ({_rows((key_type,))})")


_TEXT, _INT, _FLOAT = "text", "int8", "float8"

#: the engine's many-row statements (as rendered for PostgreSQL) and their one-statement forms
_COLUMNAR: dict[str, _Columnar] = {
    POSTGRES.sql(sql.INSERT_EVENTS): _insert_columnar(
        sql.INSERT_EVENTS, (_TEXT, _INT, _INT, _FLOAT, _TEXT, _TEXT)
    ),
    POSTGRES.sql(sql.UPDATE_PROGRESS): _update_columnar(
        "executions",
        sql.PROGRESS_COLUMNS,
        (_TEXT, _TEXT, _TEXT, _TEXT, _FLOAT, _TEXT, _INT, _INT, _FLOAT, _TEXT),
    ),
    POSTGRES.sql(sql.INSERT_SIGNALS): _insert_columnar(sql.INSERT_SIGNALS, (_TEXT, _FLOAT, _TEXT)),
    POSTGRES.sql(sql.DELETE_SIGNALS): _delete_columnar("signals", "id", _INT),
    POSTGRES.sql(sql.INSERT_TASKS): _insert_columnar(
        sql.INSERT_TASKS, (_TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _FLOAT, _TEXT, _FLOAT, _TEXT)
    ),
    POSTGRES.sql(sql.DELETE_TASKS): _delete_columnar("tasks", "token", _TEXT),
    POSTGRES.sql(sql.INSERT_EXECUTIONS): _insert_columnar(
        sql.INSERT_EXECUTIONS,
        # arn, machine_arn, name, status, input, started_at, started_with,
        # definition, role_arn, token_prefix, output, error, cause, stopped_at,
        # snapshot, event_count, redrive_count, redriven_at, parent_arn,
        # parent_token, machine_type
        (*[_TEXT] * 5, _FLOAT, *[_TEXT] * 7, _FLOAT, _TEXT, _INT, _INT, _FLOAT, *[_TEXT] * 3),
    ),
}


def _lost(exc: psycopg.Error) -> NoReturn:
    raise StoreError(f"the PostgreSQL transaction failed: {exc}") from exc


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._guard = threading.Lock()
        connection = self._connection()
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            migrate(POSTGRES, lambda sql, params: self._run(connection, sql, params))

    def _connection(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            try:
                connection = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot connect to PostgreSQL at {self.url}: {exc}") from exc
            self._local.connection = connection
            with self._guard:
                self._connections = [c for c in self._connections if not c.closed]
                self._connections.append(connection)
        return connection

    @staticmethod
    def _run(
        connection: psycopg.Connection[Any], statement: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        statement, is_insert = _skip_taken(statement)
        try:
            cursor = connection.execute(statement, params, prepare=True)
            rows = cursor.fetchall() if cursor.description else []
        except pg_errors.UniqueViolation as exc:  # only a concurrent insert gets here
            raise Conflict(str(exc)) from exc
        except psycopg.OperationalError as exc:
            _lost(exc)
        if is_insert and cursor.rowcount == 0:
            raise _conflict(statement)
        return rows

    @staticmethod
    def _run_many(
        connection: psycopg.Connection[Any], statement: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        columnar = _COLUMNAR.get(statement)
        if columnar is not None:
            statement = columnar.statement
        statement, is_insert = _skip_taken(statement)
        try:
            with connection.cursor() as cursor:
                if columnar is None:
                    cursor.executemany(statement, rows)
                    written = cursor.rowcount
                else:
                    written = 0
                    for array in columnar.arrays(rows):
                        cursor.execute(statement, (array,), prepare=True)
                        written += cursor.rowcount
        except pg_errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc
        except psycopg.OperationalError as exc:
            _lost(exc)
        if is_insert and written < len(rows):
            raise _conflict(statement)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        connection = self._connection()
        try:
            with connection.transaction() as block:
                session = _Session(connection)
                yield SqlTransaction(POSTGRES, session.run, session.run_many, session.pipelined)
        except psycopg.OperationalError as exc:  # the commit itself, or a lost rollback
            _lost(exc)
        # psycopg ends a block quietly when its connection is already broken: a
        # transition the engine believes durable must really have committed.
        if block.status is not block.Status.COMMITTED:
            raise StoreError(f"the PostgreSQL transaction did not commit ({block.status.value})")

    def close(self) -> None:
        with self._guard:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


class _Session:
    """One transaction's statements on its connection, pipelined or not."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self._piped = False

    def run(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return PostgresStore._run(self._connection, statement, params)

    def run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not self._piped:
            PostgresStore._run_many(self._connection, statement, rows)
            return
        # In a pipeline nothing is answered before its end: a taken key is not
        # skipped and counted but fails the statement, and so the block.
        columnar = _COLUMNAR.get(statement)
        try:
            with self._connection.cursor() as cursor:
                if columnar is None:
                    cursor.executemany(statement, rows)
                else:
                    for array in columnar.arrays(rows):
                        cursor.execute(columnar.statement, (array,), prepare=True)
        except pg_errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc
        except psycopg.OperationalError as exc:
            _lost(exc)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        if self._piped:
            yield
            return
        try:
            with self._connection.pipeline():
                self._piped = True
                try:
                    yield
                finally:
                    self._piped = False
        except pg_errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc
        except psycopg.OperationalError as exc:
            _lost(exc)
