"""Group commit: concurrent callers share one transaction, and so one fsync.

The first caller to arrive leads: it takes every request queued by then, runs
them all in one transaction and hands each its own answer, then looks again
for requests that arrived meanwhile. Later callers only wait for their answer.
A request that fails on its own (an unknown state machine, a taken name)
raises for its caller alone, and must have written nothing before failing; a
transaction that fails as a whole fails every request in it.

This module never decides what a request does: the caller passes the function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dirigent.engine.errors import ServiceError
from dirigent.store.port import Store, Transaction

Q = TypeVar("Q")
A = TypeVar("A")


@dataclass
class _Waiting(Generic[Q, A]):
    request: Q
    done: threading.Event = field(default_factory=threading.Event)
    answer: A | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Q, A]):
    def __init__(
        self,
        store: Store,
        run: Callable[[Transaction, Q], A],
        after: Callable[[list[A]], None] | None = None,
    ) -> None:
        self._store = store
        self._run = run
        self._after = after
        self._lock = threading.Lock()
        self._queue: list[_Waiting[Q, A]] = []
        self._leading = False

    def submit(self, request: Q) -> A:
        waiting: _Waiting[Q, A] = _Waiting(request)
        with self._lock:
            self._queue.append(waiting)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.answer is not None
        return waiting.answer

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._leading = False
                    return
            answered: list[A] = []
            try:
                with self._store.transaction() as tx:
                    for item in batch:
                        try:
                            item.answer = self._run(tx, item.request)
                            answered.append(item.answer)
                        except ServiceError as exc:
                            item.error = exc
            except BaseException as exc:  # the transaction failed: nothing in it holds
                for item in batch:
                    item.error = exc
                    item.answer = None
                answered = []
            if self._after is not None and answered:
                self._after(answered)
            for item in batch:
                item.done.set()
