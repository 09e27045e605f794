"""The embedded default: one SQLite file in WAL mode.

One connection serves the whole process behind a lock, and every write
transaction starts with ``BEGIN IMMEDIATE``, so transactions never interleave
and a claim needs no row locks. WAL lets readers of other processes (the CLI
reading a running engine's file) proceed while the engine writes. The engine
groups many transitions into one transaction, so the fsync per commit is
shared by all of them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dirigent.store.port import Conflict, StoreError, Transaction
from dirigent.store.sql import SQLITE, SqlTransaction, migrate

#: the constraint failures that mean "the key is taken"; NOT NULL and CHECK are bugs
_TAKEN = {sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE}


def _translate(exc: sqlite3.IntegrityError) -> Exception:
    return Conflict(str(exc)) if exc.sqlite_errorcode in _TAKEN else exc


class SqliteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit reaches the disk before it returns (a transition
        # acknowledged is a transition kept, power loss included).
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=OFF")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                migrate(SQLITE, self._run)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _run(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(statement, params).fetchall()
        except sqlite3.IntegrityError as exc:
            raise _translate(exc) from exc

    def _run_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._db.executemany(statement, rows)
        except sqlite3.IntegrityError as exc:
            raise _translate(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield SqlTransaction(SQLITE, self._run, self._run_many)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                # A failed COMMIT leaves the transaction open; end it so the next can begin.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"the SQLite transaction did not commit: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
