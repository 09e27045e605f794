"""Stores for the contract suite: every test runs once per adapter.

SQLite gets a file in the test's temporary directory. PostgreSQL gets one
database for the whole session (``dirigent_contract_<random>``, dropped at the
end) and a fresh schema per test, selected through the URL's ``search_path``,
so each test starts from an empty, freshly migrated store.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from dirigent.store import Store, open_store

#: the server the PostgreSQL half of the suite runs against (a database it may create)
ADMIN_URL = os.environ.get(
    "DIRIGENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

ADAPTERS = ["sqlite", "postgresql"]


def server_url(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this session, dropped afterwards."""
    name = f"dirigent_contract_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_schema_url(postgres_database: str) -> Iterator[str]:
    """A URL onto an empty schema of the session database, dropped after the test."""
    schema = f"t_{secrets.token_hex(6)}"
    url = server_url(postgres_database)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield f"{url}?options={quote(f'-csearch_path={schema}')}"
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(adapter: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of the adapter under test."""
    if adapter == "sqlite":
        return f"sqlite:///{tmp_path / 'dirigent.db'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def open_stores(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens stores on the test's URL; every one of them is closed after the test."""
    opened: list[Store] = []

    def open_one() -> Store:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], Store]) -> Store:
    return open_stores()
