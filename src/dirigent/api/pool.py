"""Threads that run the engine's blocking calls for the event loop, at a small cost per call.

Every Step Functions action blocks (a store transaction, sometimes a long
poll), so each one leaves the event loop for a thread and comes back. With
``loop.run_in_executor`` that round trip costs about 20 µs of CPU under load:
a ``concurrent.futures.Future`` with its own condition variable, the
executor's work item and idle semaphore, and the callbacks that chain it to an
asyncio future. All of it runs under the GIL that the thread holding the
store's transaction also needs, so on a small machine it slows every
transaction down. Here a call is one tuple on a queue and one
``call_soon_threadsafe`` back: about 3 µs.

Threads start on demand up to ``size`` and then stay; a call made while all of
them are busy waits in the queue, as with ``ThreadPoolExecutor``.

This module must never know what the calls do; it only carries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: called with ``(result, None)`` or ``(None, error)`` on the pool's thread
Done = Callable[[Any, BaseException | None], None]
_Job = tuple[Callable[..., Any], tuple[Any, ...], Done]


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Give an asyncio future its result or error, unless it was cancelled."""
    if future.cancelled():
        return  # the request went away (client disconnect, shutdown)
    if isinstance(error, asyncio.CancelledError):
        future.cancel()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ThreadPool:
    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Threads waiting for a job that no queued job has claimed yet; a submit
        # claims one or starts a thread, so a job never waits behind a busy
        # thread (a 60 s long poll) while the pool is below its size.
        self._unclaimed = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads have started so far."""
        return len(self._threads)

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``function(*args)`` on a pool thread; await the answer on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future, result, error)

        self.run_then(function, args, done)
        return future

    def run_then(self, function: Callable[..., Any], args: tuple[Any, ...], done: Done) -> None:
        """Run ``function(*args)`` on a pool thread and hand its outcome to ``done`` there.

        For callers that gather many answers before waking their loop (the
        engine's side of the API front's connection). A call dropped by
        :meth:`close` gets ``asyncio.CancelledError``.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} thread pool is closed")
            if self._unclaimed:
                self._unclaimed -= 1
            elif len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put((function, args, done))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, args, done = job
            result: Any = None
            error: BaseException | None = None
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the caller, which re-raises it
                error = exc
            del job, function, args  # drop references before waiting again
            done(result, error)
            del done, result, error
            with self._lock:
                self._unclaimed += 1

    def close(self) -> None:
        """Stop the threads once the calls already running return; queued calls are dropped."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[2](None, asyncio.CancelledError())
        for _ in threads:
            self._jobs.put(None)
