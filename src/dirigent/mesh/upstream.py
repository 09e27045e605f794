"""Pooled keep-alive connections to upstream endpoints, as asyncio Protocols.

A :class:`Connection` writes one request and parses its response with
httptools as the bytes arrive, calling back the :class:`Receiver` that sent
it: the head once complete, each body piece as it comes (the very bytes the
event loop handed in, so a relay can write them on without copying), the end.
No task, future or stream sits between the socket and the receiver.

A response that arrives whole in one read, with a head that may pass on
unchanged (no hop-by-hop header, a ``Content-Length``:
:func:`dirigent.mesh.heads.scan_response`), is handed over in one call,
:meth:`Receiver.response_whole`, as the very bytes read; a receiver that
cannot pass it on as it is (it must rewrite headers or close the client's
connection) declines, and httptools parses it as any other.

A connection whose response ended cleanly goes back to its endpoint's idle
list in the :class:`Pool` and serves the next request to that endpoint; one
that failed, timed out or was told to close is closed. Opening honours
nothing but what the caller does with the coroutine: limits are the
breaker's business, in the proxy.

A ``101`` answer makes the connection a tunnel: the receiver is told of the
head, then :meth:`Connection.open_tunnel` sends every later byte (and those
read with the head) to the client's connection, and this connection is never
pooled again.

This module must never retry, choose an endpoint or look at a status code.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

import httptools

from dirigent.mesh.heads import scan_response
from dirigent.mesh.http1 import HOP_BY_HOP

#: idle connections kept per endpoint; more are closed when given back
MAX_IDLE = 64
#: response headers never passed on: hop-by-hop ones, and the length (re-framed)
_NOT_FORWARDED = HOP_BY_HOP | {b"content-length"}


class Receiver(Protocol):
    """Whoever sent a request on a connection: told of its response as it arrives."""

    def response_head(
        self, connection: Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """``headers`` are the end-to-end ones only, already filtered as forwarded."""

    def response_whole(self, connection: Connection, status: int, data: bytes) -> bool:
        """A whole response whose head may pass on unchanged; False: parse it piece by piece.

        On True the response is the receiver's: the connection has no
        receiver any more and is the receiver's to release or close.
        """

    def response_body(self, piece: bytes) -> None: ...

    def response_flush(self) -> None: ...

    def response_end(self, connection: Connection) -> None: ...

    def response_lost(self, connection: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One connection to an upstream endpoint, carrying one request at a time."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.receiver: Receiver | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._named: list[bytes] = []
        #: the response's declared length (None: chunked or until close)
        self.length: int | None = None
        self.chunked = False
        #: the response may be followed by another on this connection
        self.keep_alive = False
        self._head_only = False
        self._in_head = True
        #: nothing of the current response has reached httptools yet
        self._fresh = False
        self.reused = False
        self.closed = False
        #: whose connection limit this connection counts against (the proxy's
        #: per-destination state); the pool only compares it
        self.owner: object = None
        #: called once when the connection closes, and when it goes back idle
        self.on_close: Callable[[], None] | None = None
        self.on_idle: Callable[[], None] | None = None
        #: the Upgrade header of a 101 answer (hop-by-hop, so not in the headers)
        self.upgrade: bytes | None = None
        #: after a 101: where bytes read go, what to call on close, whom to
        #: pause when this connection cannot take more
        self._tunnel: Callable[[bytes], None] | None = None
        self._tunnel_closed: Callable[[], None] | None = None
        self._tunnel_pause: Callable[[bool], None] | None = None
        self._upgraded = False
        self._early = b""

    # -- for the sender ---------------------------------------------------

    def send(self, receiver: Receiver, payload: bytes, head_only: bool = False) -> None:
        """Write a whole request; its response goes to ``receiver``."""
        self.receiver = receiver
        # New lists only when the last response filled them (the list went to
        # its receiver); one that came through response_whole left them empty.
        if self._headers:
            self._headers = []
        if self._named:
            self._named = []
        self.length = None
        self.chunked = False
        self._head_only = head_only
        self._in_head = True
        # A response to HEAD has a length but no body: httptools handles it.
        self._fresh = not head_only
        assert self.transport is not None
        self.transport.write(payload)

    def pause_reading(self, paused: bool) -> None:
        if self.transport is not None and not self.closed:
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def ssl_object(self) -> ssl.SSLObject | None:
        if self.transport is None:
            return None
        found: ssl.SSLObject | None = self.transport.get_extra_info("ssl_object")
        return found

    def write(self, data: bytes) -> None:
        if not self.closed:
            assert self.transport is not None
            self.transport.write(data)

    def open_tunnel(
        self,
        sink: Callable[[bytes], None],
        closed: Callable[[], None],
        pause: Callable[[bool], None],
    ) -> None:
        """After a 101: every byte read (and those that came with the head) goes to ``sink``."""
        self.receiver = None
        self._tunnel, self._tunnel_closed, self._tunnel_pause = sink, closed, pause
        early, self._early = self._early, b""
        if early:
            sink(early)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.receiver = None
        if self.transport is not None:
            self.transport.close()
        if self.on_close is not None:
            self.on_close()
        closed, self._tunnel_closed = self._tunnel_closed, None
        if closed is not None:
            closed()

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        raw = transport.get_extra_info("socket")
        if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
            # Small requests must not wait for Nagle's algorithm.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel(data)
            return
        receiver = self.receiver
        if receiver is None:
            # Bytes nobody asked for (on an idle connection): it cannot be trusted.
            self.close()
            return
        if self._fresh:
            self._fresh = False
            found = scan_response(data)
            if found is not None and found[1] + found[2] == len(data):
                self.receiver = None
                self.keep_alive = True  # HTTP/1.1, a length and no Connection header
                if receiver.response_whole(self, found[0], data):
                    return
                self.receiver = receiver
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The 101's head was handed over in on_headers_complete; what
            # follows it belongs to the tunnel, open by now or soon.
            self._after_head(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError:
            waiting = self.receiver is receiver  # not if its response had already ended
            self.close()
            if waiting:
                receiver.response_lost(self)
            return
        # A head whose body is still to come must not wait for it.
        if self.receiver is receiver and not self._in_head:
            receiver.response_flush()

    def _after_head(self, rest: bytes) -> None:
        """Bytes that came in with a 101's head."""
        if self._tunnel is not None:
            if rest:
                self._tunnel(rest)
        elif self._upgraded and self.receiver is not None:
            self._early += rest  # the receiver is opening the tunnel
        else:
            self.close()  # a 101 its receiver turned down

    def pause_writing(self) -> None:
        if self._tunnel_pause is not None:
            self._tunnel_pause(True)

    def resume_writing(self) -> None:
        if self._tunnel_pause is not None:
            self._tunnel_pause(False)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - why is not needed
        if self._tunnel is not None:
            self.close()
            return
        receiver = self.receiver
        was_closed = self.closed
        self.close()
        if receiver is None or was_closed:
            return
        if not self._in_head and self.length is None and not self.chunked:
            receiver.response_end(self)  # a response without a length ends with its connection
        else:
            receiver.response_lost(self)

    # -- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # Filtered for forwarding as they arrive: the relay needs no second pass.
        name = name.lower()
        if name not in _NOT_FORWARDED:
            self._headers.append((name, value))
        elif name == b"content-length":
            if value.isdigit():
                self.length = int(value)
        elif name == b"transfer-encoding":
            self.chunked = value.lower().endswith(b"chunked")
        elif name == b"connection":
            self._named += (token.strip().lower() for token in value.split(b","))
        elif name == b"upgrade":
            self.upgrade = value

    def on_headers_complete(self) -> None:
        receiver = self.receiver
        if receiver is None:
            return
        self._in_head = False
        parser = self._parser
        self.keep_alive = bool(parser.should_keep_alive())
        # Never this connection's own empty list: send() keeps an empty one for the next response.
        headers = self._headers or []
        if self._named:  # headers the Connection header named are hop-by-hop too
            headers = [h for h in headers if h[0] not in self._named]
        status = parser.get_status_code()
        if status == 101:
            # Whatever the receiver does with it, this connection is never pooled again.
            self._upgraded = True
            self.keep_alive = False
        receiver.response_head(self, status, headers)
        if self._head_only and self.receiver is receiver:
            # A response to HEAD has no body whatever its length says; llhttp
            # cannot be told so through httptools, so the connection is not reused.
            self.keep_alive = False
            self.receiver = None
            receiver.response_end(self)

    def on_body(self, body: bytes) -> None:
        receiver = self.receiver
        if receiver is not None:
            receiver.response_body(body)

    def on_message_complete(self) -> None:
        receiver = self.receiver
        if receiver is not None and not self._upgraded:
            self.receiver = None
            receiver.response_end(self)


class Pool:
    """Idle connections by endpoint address; speaks TLS to every endpoint or to none."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        #: the outbound proxy keeps one pool of each
        self.tls = tls

    def take_idle(self, address: tuple[str, int]) -> Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    def evict_idle(self, owner: object) -> bool:
        """Close one idle connection counted against ``owner``; False if it has none."""
        for idle in self._idle.values():
            for connection in idle:
                if connection.owner is owner and not connection.closed:
                    idle.remove(connection)
                    connection.close()
                    return True
        return False

    async def connect(self, address: tuple[str, int]) -> Connection:
        """A new connection (OSError if it cannot be made; a failed TLS handshake too)."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: Connection(address), address[0], address[1],
            ssl=self.tls, server_hostname="" if self.tls else None,
        )  # fmt: skip
        return connection

    def release(self, connection: Connection) -> None:
        """Give back a connection whose response ended cleanly."""
        if connection.closed or not connection.keep_alive:
            connection.close()
            return
        idle = self._idle.get(connection.address)
        if idle is None:
            idle = self._idle[connection.address] = []
        if len(idle) >= MAX_IDLE:
            connection.close()
            return
        idle.append(connection)
        if connection.on_idle is not None:
            connection.on_idle()

    def close(self) -> None:
        every = [connection for idle in self._idle.values() for connection in idle]
        self._idle.clear()
        for connection in every:
            connection.close()
