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
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from dirigent.api.actions import LONG_ACTIONS, Action, bind_actions
from dirigent.api.feed import Feed
from dirigent.api.internal import ENGINE_STATS, READ_FEED, bind_internal
from dirigent.api.pool import Done, ThreadPool, settle
from dirigent.engine import Engine

#: actions that only read memory: answered on the caller's thread, no pool hop
INLINE_ACTIONS = frozenset({ENGINE_STATS, READ_FEED})

#: stops a call in flight whose caller went away (a long poll, a synchronous execution)
Cancel = Callable[[], None]


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
        self.actions: dict[str, Action] = {**bind_actions(engine), **bind_internal(engine, feed)}
        self.quick = ThreadPool(quick_threads, "api")
        self.slow = ThreadPool(slow_threads, "api-wait")
        # The activity polls in flight, and whether the server is stopping.
        self._polls: set[threading.Event] = set()
        self._winding_down = False

    def submit(self, action: str, request: Mapping[str, Any], done: Done) -> Cancel | None:
        """Start ``action``; ``done(answer, error)`` is called once, from whichever
        thread finished it (a pool thread, the worker loop's, or this one).

        For a long action, returns what ends it early when its caller goes away
        (``done`` is still called, with whatever it then answers).
        An unknown action is a KeyError here: callers pass names they checked.
        """
        function = self.actions[action]
        if action in LONG_ACTIONS:
            return self._long_call(action, request, done)
        if action in INLINE_ACTIONS:
            try:
                answer = function(request)
            except Exception as exc:  # handed over like any action's failure
                done(None, exc)
            else:
                done(answer, None)
            return None
        if action == "StartExecution":
            try:
                # Straight to the worker loop, answered from it: no pool thread
                # wakes up, waits and wakes the caller for the busiest action.
                if self.engine.executions.start_execution_then(request, done):
                    return None
            except Exception as exc:  # a bad request is refused at once
                done(None, exc)
                return None
        self.quick.run_then(function, (request,), done)
        return None

    def _long_call(self, action: str, request: Mapping[str, Any], done: Done) -> Cancel:
        """A long poll or a synchronous execution, on the slow pool, told when its
        caller went away; an activity poll also when the server stops (see wind_down)."""
        gone = threading.Event()
        if action == "StartSyncExecution":
            self.slow.run_then(self.engine.start_sync_execution, (request, gone.is_set), done)
            return gone.set
        if self._winding_down:
            gone.set()
        self._polls.add(gone)

        def finished(answer: Any, error: BaseException | None) -> None:
            self._polls.discard(gone)
            done(answer, error)

        self.slow.run_then(self.engine.get_activity_task, (request, gone.is_set), finished)
        return gone.set

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

        cancel = self.submit(action, request, done)
        try:
            return await future
        except asyncio.CancelledError:  # the client went away
            if cancel is not None:
                cancel()
            raise

    def wind_down(self) -> None:
        """The server is stopping: activity polls in flight end now with no task,
        as if their wait ran out, and new ones at once, so a stop neither waits
        out nor cuts off a room of polling workers. Synchronous executions are
        left to finish within the server's graceful limit: AWS answers them
        only with an end status."""
        self._winding_down = True
        for gone in list(self._polls):
            gone.set()

    def close(self) -> None:
        self.quick.close()
        self.slow.close()
