"""Accepting a mesh listener's connections in the service's mTLS mode.

Each accepted connection is handled as the service's PeerAuthentication mode
says at that moment (a policy change applies to the next connection):

- STRICT: a TLS handshake that requires a client certificate signed by the
  mesh CA. A plain-text client, or one with a certificate from another CA,
  fails the handshake and is closed before a byte of HTTP is read.
- PERMISSIVE: the first byte decides. ``0x16`` opens a TLS handshake record,
  so the connection is TLS (a client certificate is then checked if given);
  anything else is plain text, whose caller has no identity.
- DISABLE: plain text only.

Each settled connection goes to a protocol the handler makes
(:class:`~dirigent.mesh.wire.ServerConnection`, which reads the caller's
SPIFFE ID from its TLS transport), with no task or stream left in between.
A coroutine handler taking ``(reader, writer, principal)`` is still served,
on asyncio streams, for code written against the earlier interface.

This module must never read HTTP or decide anything about a request: it
hands over connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
from collections.abc import Awaitable, Callable

from dirigent.mesh.config import MtlsMode
from dirigent.mesh.identity import peer_identity
from dirigent.mesh.tls import ServiceTls

#: makes the protocol that serves one settled connection
ProtocolFactory = Callable[[], asyncio.Protocol]
#: the earlier form: a coroutine given the connection's streams and the caller's identity
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str | None], Awaitable[None]]
Handler = ProtocolFactory | StreamHandler
#: the first byte of every TLS connection: a handshake record (RFC 8446, section 5.1)
TLS_HANDSHAKE_RECORD = 0x16
#: a client that says nothing, or does not finish its handshake, is dropped after this
HANDSHAKE_TIMEOUT = 10.0
_STREAM_LIMIT = 2**16


class Listener:
    """A listening socket whose connections go to ``handler`` once their mode is settled."""

    def __init__(
        self,
        handler: Handler,
        *,
        mode: Callable[[], MtlsMode],
        tls: ServiceTls | None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self._handler = handler
        self._mode = mode
        self.tls = tls
        self._handshake_timeout = handshake_timeout
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        #: connections refused at the handshake (STRICT plain text, a foreign CA)
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._socket is not None, "the listener is not started"
        port: int = self._socket.getsockname()[1]
        return port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Listener:
        sock = socket.create_server((host, port), backlog=1024, reuse_port=False)
        sock.setblocking(False)
        self._socket = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop(sock))
        return self

    def close(self) -> None:
        """Stop accepting; connections already open run on until they end."""
        if self._accepting is not None:
            self._accepting.cancel()
        if self._socket is not None:
            self._socket.close()

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(sock)
            except OSError:
                if sock.fileno() == -1:
                    return  # closed
                continue  # e.g. EMFILE or a connection reset before accept: keep serving
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._open(connection))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _open(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            context = await self._context_for(connection)
        except (TimeoutError, OSError, _Refused):
            self.refused += 1
            connection.close()
            return
        streams = inspect.iscoroutinefunction(self._handler)
        reader = asyncio.StreamReader(limit=_STREAM_LIMIT) if streams else None
        factory: ProtocolFactory = (
            (lambda: asyncio.StreamReaderProtocol(reader)) if reader is not None
            else self._handler  # type: ignore[assignment]  # not a coroutine function: a factory
        )  # fmt: skip
        try:
            transport, protocol = await loop.connect_accepted_socket(
                factory,
                connection,
                ssl=context,
                ssl_handshake_timeout=self._handshake_timeout if context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, EOFError):
            self.refused += 1
            connection.close()
            return
        if reader is None:
            return  # the protocol serves the connection from here on
        assert isinstance(protocol, asyncio.StreamReaderProtocol)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        principal = peer_identity(writer.get_extra_info("ssl_object")) if context else None
        await self._handler(reader, writer, principal)  # type: ignore[call-arg,misc]

    async def _context_for(self, connection: socket.socket) -> ssl.SSLContext | None:
        mode = self._mode()
        if mode is MtlsMode.DISABLE:
            return None
        if self.tls is None:
            if mode is MtlsMode.STRICT:
                raise _Refused  # STRICT without an identity to present refuses everyone
            return None
        if mode is MtlsMode.STRICT:
            return self.tls.strict
        first = await _peek(connection, self._handshake_timeout)
        return self.tls.permissive if first == TLS_HANDSHAKE_RECORD else None


class _Refused(Exception):
    pass


async def _peek(connection: socket.socket, timeout: float) -> int | None:
    """The first byte the client sent, left in the socket for whoever reads next."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(connection.fileno(), wake)
    try:
        async with asyncio.timeout(timeout):
            await readable
    finally:
        loop.remove_reader(connection.fileno())
    with contextlib.suppress(BlockingIOError):
        data = connection.recv(1, socket.MSG_PEEK)
        if not data:
            raise ConnectionResetError("closed before sending anything")
        return data[0]
    return None
