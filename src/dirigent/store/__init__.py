"""Persistence: the port the engine writes through, and its two adapters.

Only this package talks to a database. :func:`open_store` turns a store URL
into an adapter: ``sqlite:///PATH`` (the default, a file under ``.dirigent/``)
or ``postgresql://USER@HOST:PORT/DB``.
"""

from __future__ import annotations

from pathlib import Path

from dirigent.store.port import Conflict, Store, StoreError, Transaction

DEFAULT_SQLITE_PATH = Path(".dirigent") / "dirigent.db"


def open_store(url: str | None = None, *, base_dir: Path | None = None) -> Store:
    """The store a URL names; ``None`` means the SQLite file under ``base_dir``."""
    if url is None:
        url = f"sqlite:///{(base_dir or Path.cwd()) / DEFAULT_SQLITE_PATH}"
    if url.startswith("sqlite:///"):
        # Imported here so a SQLite user never pays for importing psycopg, and back.
        from dirigent.store.sqlite import SqliteStore  # noqa: PLC0415

        return SqliteStore(url.removeprefix("sqlite:///") or DEFAULT_SQLITE_PATH)
    if url.startswith(("postgresql://", "postgres://")):
        from dirigent.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(url)
    raise StoreError(
        f"unknown store URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


__all__ = ["DEFAULT_SQLITE_PATH", "Conflict", "Store", "StoreError", "Transaction", "open_store"]
