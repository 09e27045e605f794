"""What every request handler needs, wired once by the composition root.

The engine's methods block (they run database transactions, and some long-poll),
so handlers run them on thread pools: ``quick`` for ordinary actions and
``slow`` for the long polls and synchronous executions, so a room full of
activity workers waiting for tasks cannot starve a ``DescribeExecution``.

This module must never create an engine, a store or credentials itself.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from dirigent.api.actions import LONG_ACTIONS, Action, bind_actions
from dirigent.api.auth import Principals
from dirigent.api.feed import Feed
from dirigent.api.pool import ThreadPool
from dirigent.api.pool import settle as settle_future
from dirigent.engine import Engine
from dirigent.sigv4 import SigningKey, memoised_signing_key

T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def request_ids() -> Callable[[], str]:
    """Fresh UUID4-shaped request ids from a generator seeded once.

    A request id must be unique, not secret. ``uuid.uuid4`` reads
    ``os.urandom``, a system call that hands the GIL to another thread; on the
    event loop, getting it back can take a whole switch interval (5 ms).
    """
    generator = random.Random(secrets.randbits(128))
    return lambda: str(uuid.UUID(int=generator.getrandbits(128), version=4))


@dataclass
class ApiContext:
    engine: Engine
    principals: Principals
    now: Callable[[], datetime] = _utc_now
    quick_threads: int = 32
    slow_threads: int = 256
    #: derives SigV4 signing keys; memoised, since a key serves a whole day
    signing_keys: SigningKey = field(default_factory=memoised_signing_key)
    #: the ``x-amzn-RequestId`` of each Step Functions answer (event loop only)
    request_id: Callable[[], str] = field(default_factory=request_ids)
    #: every execution's committed history events (``GET /api/v1/events``); ``None``
    #: when the engine's store is not wrapped in a :class:`dirigent.api.feed.FeedStore`
    feed: Feed | None = None
    actions: dict[str, Action] = field(init=False)
    quick: ThreadPool = field(init=False)
    slow: ThreadPool = field(init=False)

    def __post_init__(self) -> None:
        self.actions = bind_actions(self.engine)
        self.quick = ThreadPool(self.quick_threads, "api")
        self.slow = ThreadPool(self.slow_threads, "api-wait")

    async def call(self, function: Callable[..., T], *args: Any, slow: bool = False) -> T:
        return await (self.slow if slow else self.quick).submit(function, *args)

    async def act(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        if action == "StartExecution":
            started = await self._start_in_worker_loop(request)
            if started is not None:
                return started
        return await self.call(self.actions[action], request, slow=action in LONG_ACTIONS)

    async def _start_in_worker_loop(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """StartExecution handed straight to the engine's worker loop, answered
        from it: no pool thread wakes up, waits and wakes the event loop for
        the busiest action. ``None`` when the worker loop is not running."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(answer: dict[str, Any] | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle_future, future, answer, error)

        if not self.engine.executions.start_execution_then(request, settle):
            return None
        return await future

    def close(self) -> None:
        self.quick.close()
        self.slow.close()
