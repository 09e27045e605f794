"""Group commit: concurrent callers share one transaction, and so one fsync.

A caller that finds nobody leading leads: it takes every request queued by
then, runs them all in one transaction and hands each its own answer. Then it
passes the lead to the first request that arrived meanwhile, if any, and
returns its own answer: no caller keeps leading (and waiting) while others
keep arriving. A request that fails on its own (an unknown state machine, a
taken name) raises for its caller alone, and must have written nothing before
failing; a transaction that fails as a whole fails every request in it.

This module never decides what a request does: the caller passes the function,
which gets the batch's :class:`Writes` to gather its rows into: they are written
once for the whole batch, one statement per kind, before it commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dirigent.engine.errors import ServiceError
from dirigent.engine.transitions import Writes
from dirigent.store.port import Store, Transaction

Q = TypeVar("Q")
A = TypeVar("A")

log = logging.getLogger("dirigent.engine")


@dataclass
class _Waiting(Generic[Q, A]):
    request: Q
    #: set when the request is answered, or when it is its turn to lead
    wake: threading.Event = field(default_factory=threading.Event)
    answered: bool = False
    lead: bool = False
    answer: A | None = None
    error: BaseException | None = None


class GroupCommit(Generic[Q, A]):
    def __init__(
        self,
        store: Store,
        run: Callable[[Transaction, Q, Writes], A],
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
            if not self._leading:
                self._leading = waiting.lead = True
        while True:
            if waiting.lead and not waiting.answered:
                self._lead_once()
            if waiting.answered:
                break
            waiting.wake.wait()
            waiting.wake.clear()
        if waiting.error is not None:
            raise waiting.error
        assert waiting.answer is not None
        return waiting.answer

    def _lead_once(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        answered: list[A] = []
        try:
            with self._store.transaction() as tx:
                writes = Writes()
                for item in batch:
                    try:
                        item.answer = self._run(tx, item.request, writes)
                        answered.append(item.answer)
                    except ServiceError as exc:
                        item.error = exc
                writes.flush(tx)
        except BaseException as exc:  # the transaction failed: nothing in it holds
            for item in batch:
                item.error, item.answer = exc, None
            answered = []
        if self._after is not None and answered:
            try:
                self._after(answered)
            except Exception:  # committed already: the answers stand whatever happens next
                log.exception("after a group commit")
        with self._lock:
            for item in batch:
                item.answered = True
            # The first request that arrived meanwhile leads the next batch.
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].wake.set()
            else:
                self._leading = False
        for item in batch:
            item.wake.set()
