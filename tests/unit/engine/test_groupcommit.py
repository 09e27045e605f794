"""Concurrent callers share transactions; each gets its own answer or its own error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dirigent.engine.errors import ServiceError
from dirigent.engine.groupcommit import GroupCommit
from dirigent.engine.transitions import Writes
from dirigent.store import open_store
from dirigent.store.port import Store, Transaction


class CountingStore:
    """A real SQLite store that counts its transactions and makes each one slow."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            self.transactions += 1
            time.sleep(0.02)  # a slow disk: callers pile up behind the leader
            yield tx

    def close(self) -> None:
        self.inner.close()


class Refused(ServiceError):
    code = "Refused"


def test_concurrent_requests_share_a_few_transactions(tmp_path: Path) -> None:
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'g.db'}"))
    answered: list[list[int]] = []
    group: GroupCommit[int, int] = GroupCommit(store, lambda tx, n, writes: n * 2, answered.append)
    results: dict[int, int] = {}

    def call(n: int) -> None:
        results[n] = group.submit(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {n: n * 2 for n in range(40)}
    assert store.transactions < 20, store.transactions
    assert sorted(a for batch in answered for a in batch) == sorted(n * 2 for n in range(40))
    store.close()


def test_a_request_that_fails_alone_fails_only_its_caller(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")

    def run(tx: Transaction, n: int, writes: Writes) -> int:
        if n == 3:
            raise Refused("three is refused")
        return n

    group: GroupCommit[int, int] = GroupCommit(store, run)
    assert group.submit(1) == 1
    with pytest.raises(Refused):
        group.submit(3)
    assert group.submit(2) == 2
    store.close()


def test_rows_gathered_by_the_requests_commit_with_their_batch(tmp_path: Path) -> None:
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'g.db'}"))

    def run(tx: Transaction, n: int, writes: Writes) -> int:
        writes.signals.append((f"execution-{n}", 0.0, f"signal-{n}"))
        return n

    group: GroupCommit[int, int] = GroupCommit(store, run)
    threads = [threading.Thread(target=group.submit, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    with store.inner.transaction() as tx:
        bodies = [s.body for n in range(10) for s in tx.due_signals(f"execution-{n}", 1.0)]
    assert bodies == [f"signal-{n}" for n in range(10)]
    store.close()


def test_a_failed_transaction_fails_every_request_in_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")

    def run(tx: Transaction, n: Any, writes: Writes) -> int:
        raise RuntimeError("the disk is gone")

    group: GroupCommit[int, int] = GroupCommit(store, run)
    with pytest.raises(RuntimeError):
        group.submit(1)
    store.close()


def test_under_sustained_load_no_caller_keeps_leading(tmp_path: Path) -> None:
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'g.db'}"))
    group: GroupCommit[int, int] = GroupCommit(store, lambda tx, n, writes: n)
    longest = [0.0]
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            began = time.monotonic()
            group.submit(1)
            longest[0] = max(longest[0], time.monotonic() - began)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(10)
    # A transaction takes 20 ms; a caller waits for at most a couple of them,
    # never for the whole run as a leader that keeps leading would.
    assert longest[0] < 0.5, longest[0]
    store.close()
