"""What every request handler needs, wired once by the composition root.

The engine's methods block (they run database transactions, and some long-poll),
so handlers run them on thread pools: ``quick`` for ordinary actions and
``slow`` for the long polls and synchronous executions, so a room full of
activity workers waiting for tasks cannot starve a ``DescribeExecution``.

This module must never create an engine, a store or credentials itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from dirigent.api.actions import LONG_ACTIONS, Action, bind_actions
from dirigent.api.auth import Principals
from dirigent.engine import Engine

T = TypeVar("T")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiContext:
    engine: Engine
    principals: Principals
    now: Callable[[], datetime] = _utc_now
    quick_threads: int = 32
    slow_threads: int = 256
    actions: dict[str, Action] = field(init=False)
    quick: ThreadPoolExecutor = field(init=False)
    slow: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.actions = bind_actions(self.engine)
        self.quick = ThreadPoolExecutor(self.quick_threads, thread_name_prefix="api")
        self.slow = ThreadPoolExecutor(self.slow_threads, thread_name_prefix="api-wait")

    async def call(self, function: Callable[..., T], *args: Any, slow: bool = False) -> T:
        loop = asyncio.get_running_loop()
        pool = self.slow if slow else self.quick
        return await loop.run_in_executor(pool, functools.partial(function, *args))

    async def act(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.call(self.actions[action], request, slow=action in LONG_ACTIONS)

    def close(self) -> None:
        self.quick.shutdown(wait=False, cancel_futures=True)
        self.slow.shutdown(wait=False, cancel_futures=True)
