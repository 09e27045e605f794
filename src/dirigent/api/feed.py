"""Every execution's new history events in commit order: the dashboard's live stream.

The engine writes history through the store port. :class:`FeedStore` wraps
the store the composition root opened and, once a transaction has committed,
appends the events it wrote to a :class:`Feed`: a bounded ring in memory that
numbers them 1, 2, 3... ``GET /api/v1/events`` reads the ring from a position.

A position is ``EPOCH-SEQ``. EPOCH names this feed (this server process), so a
client resuming against a restarted server, or from a position that has
already fallen out of the ring, is told that it missed events (it should
reload what it shows) instead of silently missing them.

Limits: the feed is per process. Events another node writes to a shared
PostgreSQL store do not appear here; a feed across nodes needs an order kept
by the store itself (a global event sequence, or LISTEN/NOTIFY).

This module must never change what the store does: it only watches commits,
and publishing costs a lock and a deque append after the store's lock is
released.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from dirigent.store import Store, Transaction
from dirigent.store.records import EventRecord


@dataclass(frozen=True, slots=True)
class Position:
    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.seq}"

    @staticmethod
    def parse(text: str) -> Position | None:
        epoch, sep, seq = text.partition("-")
        if not sep or not epoch or not seq.isascii() or not seq.isdigit():
            return None
        return Position(epoch, int(seq))


@dataclass(frozen=True, slots=True)
class Batch:
    #: (sequence number, event), oldest first
    events: list[tuple[int, EventRecord]]
    #: events after the position asked for are no longer held (or never were here)
    missed: bool
    #: where to read next
    position: Position


class Feed:
    def __init__(self, capacity: int = 10_000, epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(4)
        self._lock = threading.Lock()
        self._ring: deque[tuple[int, EventRecord]] = deque(maxlen=capacity)
        self._last = 0

    @property
    def position(self) -> Position:
        """Where the feed is now: a reader starting here sees only what comes next."""
        return Position(self.epoch, self._last)

    def publish(self, events: Sequence[EventRecord]) -> None:
        with self._lock:
            first = self._last + 1
            self._last += len(events)
            self._ring.extend(zip(range(first, self._last + 1), events, strict=True))

    def read(self, after: Position, limit: int = 500) -> Batch:
        """Up to ``limit`` events numbered after ``after``, oldest first."""
        with self._lock:
            now = Position(self.epoch, self._last)
            if after.epoch != self.epoch or after.seq > self._last:
                # Another process's numbering, or a position this feed never
                # reached: nothing about it can be trusted; go on from now.
                return Batch([], missed=True, position=now)
            first = self._ring[0][0] if self._ring else self._last + 1
            start = max(after.seq + 1, first)
            events = list(itertools.islice(self._ring, start - first, start - first + limit))
            position = Position(self.epoch, events[-1][0]) if events else after
            return Batch(events, missed=after.seq + 1 < first, position=position)


class _Recording:
    """A transaction that notes the history events written through it."""

    def __init__(self, tx: Transaction, written: list[EventRecord]) -> None:
        self._tx = tx
        self._written = written

    def append_events(self, events: Sequence[EventRecord]) -> None:
        self._tx.append_events(events)
        self._written.extend(events)

    def __getattr__(self, name: str) -> Any:
        # Looked up once per transaction and kept: the engine calls the same few
        # methods several times in one, and this lookup is the slow path.
        value = getattr(self._tx, name)
        setattr(self, name, value)
        return value


class FeedStore:
    """A store that publishes each committed transaction's history events to a feed."""

    def __init__(self, store: Store, feed: Feed) -> None:
        self.store = store
        self.feed = feed
        self.url = store.url

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        written: list[EventRecord] = []
        with self.store.transaction() as tx:
            # The port is a Protocol with many methods; _Recording forwards all
            # but one, which mypy cannot see through __getattr__.
            yield cast(Transaction, _Recording(tx, written))
        # Reached only once the commit succeeded: a rolled-back transaction's
        # events never existed.
        if written:
            self.feed.publish(written)

    def close(self) -> None:
        self.store.close()
