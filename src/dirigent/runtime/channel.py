"""The control channel's transport: a Unix socket under ``.dirigent/``, one request per connection.

:func:`serve` runs inside ``dirigent up`` (asyncio); :func:`call` is the
blocking client the other commands use. Message shapes and their encoding are
:mod:`dirigent.runtime.control`'s; this module only moves lines.

Unix socket paths are limited to about 100 bytes, and an app may live deep in
a file system (pytest's temporary directories do). Long paths are reached
through ``/proc/self/fd/<dirfd>/<name>``, which the kernel resolves like the
real path, so the socket always lives next to the manifest.

This module must never decide what a request does (the handler does) nor
leave a socket file behind that nobody answers on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from dirigent.errors import DirigentError
from dirigent.runtime.control import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    Refused,
    Reply,
    Request,
    decode_reply,
    decode_request,
    encode,
)

Handler = Callable[[Request], Awaitable[Reply]]

_SHORT_ENOUGH = 100


class NotRunning(DirigentError):
    """Nothing answers on the control socket of an app directory."""

    def __init__(self, app_dir: Path) -> None:
        super().__init__(f"no Dirigent is running for {app_dir}; start it with dirigent up")
        self.app_dir = app_dir


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A path of at most ~100 bytes that names ``path``, valid inside the block."""
    if len(os.fsencode(path)) < _SHORT_ENOUGH:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


class ControlServer:
    """A listening control socket; :meth:`close` lets answers in flight reach their clients."""

    def __init__(self, path: Path, server: asyncio.Server, active: set[asyncio.Task[Any]]):
        self.path, self._server, self._active = path, server, active

    async def close(self, *, patience: float = 5.0) -> None:
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._active:
            await asyncio.wait(set(self._active), timeout=patience)


async def serve(path: Path, handler: Handler) -> ControlServer:
    """Listen on ``path`` (a stale socket file there is replaced) until :meth:`close`.

    The caller must hold the app's lock: only then is an existing socket file
    known to be stale rather than another ``up``'s.
    """
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    active: set[asyncio.Task[Any]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            active.add(task)
        try:
            line = await reader.readline()
            try:
                reply = await handler(decode_request(line))
            except ProtocolError as exc:
                reply = Refused(f"bad request: {exc}")
            writer.write(encode(reply))
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or sent garbage; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                active.discard(task)

    with reachable(path) as short:
        server = await asyncio.start_unix_server(connected, short, limit=MAX_MESSAGE_BYTES)
    os.chmod(path, 0o600)  # only the owner may steer the app
    return ControlServer(path, server, active)


def call(app_dir: Path, path: Path, request: Request, *, timeout: float) -> Reply:
    """Send one request and wait up to ``timeout`` seconds for its reply.

    Raises :class:`NotRunning` when nothing listens at ``path``.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            with reachable(path) as short:
                client.connect(short)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise NotRunning(app_dir) from exc
        client.sendall(encode(request))
        received = bytearray()
        while not received.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
            if len(received) > MAX_MESSAGE_BYTES:
                break
    if not received:
        # It closed without answering: it is shutting down.
        raise NotRunning(app_dir)
    try:
        return decode_reply(bytes(received))
    except ProtocolError as exc:
        raise DirigentError(f"the running Dirigent answered nonsense: {exc}") from exc
