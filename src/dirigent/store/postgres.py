"""PostgreSQL, for many engine nodes sharing one database.

Each thread gets its own connection (psycopg connections are not shared
between concurrent transactions). Claims lock rows with ``FOR UPDATE SKIP
LOCKED``: a node that dies mid-transition holds its locks only until the
database notices the connection is gone and rolls the transaction back, after
which another node claims the same work; nothing is applied twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from dirigent.store.port import Conflict, StoreError, Transaction
from dirigent.store.sql import POSTGRES, SqlTransaction, migrate

#: the advisory lock key that serializes migrations between nodes starting together
_MIGRATION_LOCK = 0x0D1261E7


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
                self._connections.append(connection)
        return connection

    @staticmethod
    def _run(
        connection: psycopg.Connection[Any], statement: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        try:
            cursor = connection.execute(statement, params, prepare=True)
        except pg_errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc
        return cursor.fetchall() if cursor.description else []

    @staticmethod
    def _run_many(
        connection: psycopg.Connection[Any], statement: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.executemany(statement, rows)
        except pg_errors.UniqueViolation as exc:
            raise Conflict(str(exc)) from exc

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        connection = self._connection()
        with connection.transaction():
            yield SqlTransaction(
                POSTGRES,
                lambda sql, params: self._run(connection, sql, params),
                lambda sql, rows: self._run_many(connection, sql, rows),
            )

    def close(self) -> None:
        with self._guard:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
