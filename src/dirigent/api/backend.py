"""The port between the HTTP handlers and the engine: an action and its request in, an answer out.

Two adapters serve it:

- :class:`LocalBackend` runs actions on the engine in this process (``dirigent
  up``, tests, and the engine's side of ``dirigent server``);
- :class:`dirigent.api.remote.RemoteBackend` sends them over a socket to the
  process that holds the engine (``dirigent server``'s HTTP front).

An answer is a JSON-shaped dict (datetimes allowed); a failure is a
:class:`~dirigent.engine.ServiceError` (the engine's, with AWS's code) or an
:class:`~dirigent.api.protocol.ApiError`, raised to the handler either way.

The engine's methods block (they run database transactions, and some
long-poll), so :class:`LocalBackend` runs them on thread pools: ``quick`` for
ordinary actions and ``slow`` for the long polls and synchronous executions,
so a room full of activity workers waiting for tasks cannot starve a
``DescribeExecution``. ``StartExecution`` goes to the engine's worker loop,
which commits it with its own transitions and answers from there.

This module must never create an engine or a store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from dirigent.api.actions import LONG_ACTIONS, Action, bind_actions
from dirigent.api.feed import Feed
from dirigent.api.internal import ENGINE_STATS, READ_FEED, bind_internal
from dirigent.api.pool import Done, ThreadPool, settle
from dirigent.engine import Engine

#: actions that only read memory: answered on the caller's thread, no pool hop
INLINE_ACTIONS = frozenset({ENGINE_STATS, READ_FEED})


class Backend(Protocol):
    async def act(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """The action's answer; raises its ServiceError or ApiError."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    def __init__(
        self,
        engine: Engine,
        feed: Feed | None = None,
        *,
        quick_threads: int = 32,
        slow_threads: int = 256,
    ) -> None:
        self.engine = engine
        self.feed = feed
        self.actions: dict[str, Action] = {**bind_actions(engine), **bind_internal(engine, feed)}
        self.quick = ThreadPool(quick_threads, "api")
        self.slow = ThreadPool(slow_threads, "api-wait")

    def submit(self, action: str, request: Mapping[str, Any], done: Done) -> None:
        """Start ``action``; ``done(answer, error)`` is called once, from whichever
        thread finished it (a pool thread, the worker loop's, or this one).

        An unknown action is a KeyError here: callers pass names they checked.
        """
        function = self.actions[action]
        if action in INLINE_ACTIONS:
            try:
                answer = function(request)
            except Exception as exc:  # handed over like any action's failure
                done(None, exc)
            else:
                done(answer, None)
            return
        if action == "StartExecution":
            try:
                # Straight to the worker loop, answered from it: no pool thread
                # wakes up, waits and wakes the caller for the busiest action.
                if self.engine.executions.start_execution_then(request, done):
                    return
            except Exception as exc:  # a bad request is refused at once
                done(None, exc)
                return
        (self.slow if action in LONG_ACTIONS else self.quick).run_then(function, (request,), done)

    async def act(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        caller = threading.get_ident()

        def done(answer: Any, error: BaseException | None) -> None:
            if threading.get_ident() == caller:  # answered inline or refused at once
                settle(future, answer, error)
                return
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future, answer, error)

        self.submit(action, request, done)
        return await future

    def close(self) -> None:
        self.quick.close()
        self.slow.close()
