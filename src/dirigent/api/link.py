"""Both ends of the connection between ``dirigent server``'s HTTP front and its engine process.

- :class:`EngineEnd` (in the engine's process) reads calls from the front and
  hands each to a :class:`~dirigent.api.backend.LocalBackend`; answers come
  back on whichever thread finished them (the worker loop for a start, a pool
  thread otherwise) and are gathered, then written on the event loop in one
  write per wake-up.
- :class:`RemoteBackend` (in the front) is the :class:`~dirigent.api.backend.Backend`
  its handlers use: each ``act`` is one frame out and one frame back,
  matched by id, many in flight on one connection.

Why one connection and batched writes: under load hundreds of calls are in
flight, and a write (a system call, and a wake-up of the other side) per
call would cost both processes more than the calls' own encoding.

This module must never decide what an action does or who may call it: the
front checks credentials and roles before it calls; the engine acts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from dirigent.api.backend import Cancel, LocalBackend
from dirigent.api.protocol import ApiError
from dirigent.api.wire import (
    CANCEL,
    INTERNAL,
    MAX_FRAME,
    READY,
    FrameError,
    Frames,
    error_of,
    failure_of,
    frame,
)

log = logging.getLogger(__name__)


def _nothing() -> None:
    pass


class _Outbox:
    """Frames written to a transport once per loop iteration, not once each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def put(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(pending))


def _messages(frames: Frames, data: bytes, outbox: _Outbox, sender: str) -> list[Any]:
    """The messages ``data`` completes; none, and the link aborted, if it is not frames."""
    try:
        return frames.feed(data)
    except FrameError as exc:
        log.error("%s sent what is not a frame (%s); closing the link", sender, exc)
        if outbox.transport is not None:
            outbox.transport.abort()
        return []


class EngineEnd(asyncio.Protocol):
    """The engine's side of one front's connection."""

    def __init__(
        self,
        backend: LocalBackend,
        loop: asyncio.AbstractEventLoop,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self._backend = backend
        self._loop = loop
        self._on_ready = on_ready
        self._frames = Frames()
        self._outbox = _Outbox(loop)
        # Answers finished on other threads, written by the loop in batches.
        self._answers: collections.deque[tuple[int, str, Any, BaseException | None]] = (
            collections.deque()
        )
        self._wake_pending = False
        self._wake_lock = threading.Lock()
        # Long calls in flight, ended early if the front cancels them or goes away.
        self._cancels: dict[int, Cancel] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self._outbox.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, _exc: Exception | None) -> None:
        # Quick calls still running finish, their answers going nowhere; long
        # ones (activity polls) end now, before they hand a task to nobody.
        self._outbox.transport = None
        cancels, self._cancels = self._cancels, {}
        for cancel in cancels.values():
            cancel()

    def _ready(self) -> None:
        on_ready, self._on_ready = self._on_ready, _nothing
        on_ready()

    def close(self) -> None:
        """Close the link: the front sees it lost and exits."""
        if self._outbox.transport is not None:
            self._outbox.transport.close()

    def data_received(self, data: bytes) -> None:
        for ident, action, request in _messages(self._frames, data, self._outbox, "the API front"):
            if action is CANCEL:
                cancel = self._cancels.pop(ident, None)
                if cancel is not None:
                    cancel()
            elif action == READY:
                self._ready()
            else:
                self._ready()  # a front that calls serves, whether or not READY came first
                self._call(ident, action, request)

    def _call(self, ident: int, action: str, request: Mapping[str, Any]) -> None:
        def done(answer: Any, error: BaseException | None) -> None:
            self._answers.append((ident, action, answer, error))
            # One wake-up of the loop for all the answers that finish before it runs.
            with self._wake_lock:
                if self._wake_pending:
                    return
                self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                self._loop.call_soon_threadsafe(self._write_answers)

        try:
            cancel = self._backend.submit(action, request, done)
        except Exception as exc:  # an unknown action, a closed pool: the call fails, not the link
            done(None, exc)
            return
        if cancel is not None:
            # Its answer is written by this thread, later: the entry goes then.
            self._cancels[ident] = cancel

    def _write_answers(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        answers = self._answers
        while answers:
            ident, action, answer, error = answers.popleft()
            self._cancels.pop(ident, None)
            if error is None:
                try:
                    data = frame((ident, True, answer))
                except Exception as exc:  # an answer that cannot travel is a bug here
                    log.exception("the answer to %s cannot be sent", action)
                    data = frame((ident, False, failure_of(exc)))
                if len(data) - 4 > MAX_FRAME:
                    # The other side would take it for a broken link and fail
                    # every call in flight; fail this one alone.
                    too_large = ApiError(
                        "ResponseTooLarge",
                        f"the answer to {action} is {len(data)} bytes, over the server's "
                        f"{MAX_FRAME}; ask for less (a smaller page)",
                        500,
                    )
                    data = frame((ident, False, failure_of(too_large)))
            else:
                failure = failure_of(error)
                if failure[0] == INTERNAL:
                    # Not the caller's doing: the front answers 500 and says no more.
                    log.error("%s failed", action, exc_info=error)
                data = frame((ident, False, failure))
            self._outbox.put(data)


async def serve_front(
    sock: socket.socket, backend: LocalBackend, on_ready: Callable[[], None] = lambda: None
) -> EngineEnd:
    """Answer calls arriving on ``sock`` (the engine's end of a front's socketpair);
    ``on_ready`` is called when the front says it serves."""
    loop = asyncio.get_running_loop()
    end = EngineEnd(backend, loop, on_ready)
    await loop.connect_accepted_socket(lambda: end, sock)
    return end


class LinkLost(ConnectionError):
    """The engine's process closed the link: every call in flight fails with this."""


class RemoteBackend(asyncio.Protocol):
    """A :class:`~dirigent.api.backend.Backend` whose engine is in another process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None]) -> None:
        self._loop = loop
        self._on_lost = on_lost
        self._frames = Frames()
        self._outbox = _Outbox(loop)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.lost = False

    @classmethod
    async def connect(cls, sock: socket.socket, on_lost: Callable[[], None]) -> RemoteBackend:
        loop = asyncio.get_running_loop()
        backend = cls(loop, on_lost)
        await loop.connect_accepted_socket(lambda: backend, sock)
        return backend

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses.
        self._outbox.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, _exc: Exception | None) -> None:
        self.lost = True
        self._outbox.transport = None
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(LinkLost("the engine's process closed the link"))
        self._on_lost()

    def data_received(self, data: bytes) -> None:
        waiting = self._waiting
        for ident, ok, payload in _messages(self._frames, data, self._outbox, "the engine"):
            future = waiting.pop(ident, None)
            if future is None or future.done():
                continue  # the request went away (client disconnect)
            if ok:
                future.set_result(payload)
            else:
                future.set_exception(error_of(payload))

    def announce_ready(self) -> None:
        """Tell the engine's process that this front serves HTTP now."""
        self._outbox.put(frame((0, READY, None)))

    async def act(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if self.lost:
            raise LinkLost("the engine's process closed the link")
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._waiting[ident] = future
        self._outbox.put(frame((ident, action, request)))
        try:
            return await future
        except asyncio.CancelledError:  # the client went away: a long call stops early
            if not self.lost:
                self._outbox.put(frame((ident, CANCEL, None)))
            raise
        finally:
            self._waiting.pop(ident, None)

    def close(self) -> None:
        if self._outbox.transport is not None:
            self._outbox.transport.close()
