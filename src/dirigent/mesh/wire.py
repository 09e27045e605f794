"""The listener side of an HTTP/1.1 connection: an asyncio Protocol fed by the event loop.

Requests are parsed by httptools straight from ``data_received``: no
``StreamReader``, no task per connection, no await per message. Each complete
request becomes a :class:`Request` and is handed to the listener's
``dispatch`` callable, one at a time: pipelined requests parsed meanwhile wait
in a short queue (reading pauses when it is full), so responses go out in
order. The handler writes its response through :meth:`ServerConnection.write`
and says when it is done with :meth:`ServerConnection.finish`; a slow client
pushes back through ``pause_writing``, which the handler is told about so it
can stop reading its upstream.

A request whose head and body arrive whole in one read, with nothing after
them, takes the fast lane: :func:`dirigent.mesh.heads.read_request` reads it
into a :class:`~dirigent.mesh.heads.Request` in one call, and httptools is not
involved. Anything it does not recognise as plain (chunked bodies,
upgrades, heads split across reads, pipelined requests, unusual bytes) goes
through httptools as before; so does every read while httptools is inside
a message or a request is being answered, which keeps requests in order.

Request bodies are held whole, up to ``max_body`` (a retry must send them
again); a larger body, or bytes that are not HTTP/1.1, get 400 and the
connection is closed.

An upgrade request (``Connection: upgrade``, ``Upgrade: websocket``) stops
the parsing: bytes after its head are held until the handler either joins
the connection to an upstream (:meth:`ServerConnection.open_tunnel`, after
a ``101``), from when on they are passed through as they come, or answers
otherwise, which closes the connection (it cannot be read as HTTP again).

This module must never decide anything about a request, nor open a
connection upstream: it frames bytes on the connection it was given.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable

import httptools

from dirigent.mesh import http1
from dirigent.mesh.heads import Request, read_request
from dirigent.mesh.identity import peer_identity

#: the largest request body held (a retry must send it again)
MAX_BODY = 8 * 2**20
#: pipelined requests parsed ahead of the one in flight before reading pauses
MAX_QUEUED = 32
_BAD_REQUEST = (
    http1.response_head(400, [(b"content-type", b"text/plain")], length=12, keep_alive=False)
    + b"bad request\n"
)


#: handles one request; answers through the connection, later or at once
Dispatch = Callable[["ServerConnection", Request], None]
#: told True when the client stops taking bytes, False when it takes them again
Backpressure = Callable[[bool], None]


class _TooLarge(Exception):
    pass


class ServerConnection(asyncio.Protocol):
    """One client's connection to a mesh listener."""

    def __init__(
        self, dispatch: Dispatch, *, principal: str | None = None, max_body: int = MAX_BODY
    ) -> None:
        self._dispatch = dispatch
        #: the caller's verified SPIFFE ID (mTLS), or None
        self.principal = principal
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._queue: deque[Request] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._connection: bytes | None = None
        self._host: bytes | None = None
        self._traceparent: bytes | None = None
        self._upgrade: bytes | None = None
        self._body: list[bytes] = []
        self._size = 0
        #: httptools has begun a message it has not finished: the next bytes are its
        self._mid = False
        #: no tunnel, no upgrade pending, not broken, not closed: reads may take the fast lane
        self._plain = True
        #: a request is being answered; the next waits in the queue
        self.busy = False
        self.closed = False
        self._eof = False
        self._broken = False
        self._reading_paused = False
        #: set by the handler while it relays a response, so a slow client
        #: can stop the upstream's reading instead of filling memory
        self.backpressure: Backpressure | None = None
        self.writing_paused = False
        #: once joined to an upstream after a 101: where bytes read go, and
        #: what to call when this side closes
        self._tunnel: Callable[[bytes], None] | None = None
        self._tunnel_closed: Callable[[], None] | None = None
        #: bytes read after an upgrade request's head, before the tunnel opened
        self._early: list[bytes] | None = None

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            # The handshake is done before a TLS transport reaches its protocol.
            self.principal = peer_identity(ssl_object)
        raw = transport.get_extra_info("socket")
        if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
            # Small responses must not wait for Nagle's algorithm.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._plain and not self.busy and not self._mid and not self._queue:
            # Exactly one whole request: what on_message_complete would have made.
            request = read_request(data, self._max_body)
            if request is not None:
                self.busy = True
                self._dispatch(self, request)
                return
        if self._tunnel is not None:
            self._tunnel(data)
            return
        if self._broken or self.closed:
            return
        if self._early is not None:
            self._hold(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self._bad_request()
            return
        if not self.busy and self._queue:
            self._next()

    def eof_received(self) -> bool:
        # A client that half-closes after its last request still gets its answers.
        self._eof = True
        if self._tunnel is not None:
            return False  # a tunnel ends with either side
        return self.busy or bool(self._queue)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - why is not needed
        self.closed = True
        self._plain = False
        self._queue.clear()
        if self.backpressure is not None:
            self.backpressure(False)  # nobody to wait for any more
        closed, self._tunnel_closed = self._tunnel_closed, None
        if closed is not None:
            closed()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.backpressure is not None:
            self.backpressure(True)

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.backpressure is not None:
            self.backpressure(False)

    # -- httptools callbacks ----------------------------------------------

    def on_message_begin(self) -> None:
        self._mid = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"host":
            if self._host is None:
                self._host = value
        elif name == b"connection":
            # Noted as it goes by, so forwarding need not search for it.
            self._connection = (
                value if self._connection is None else self._connection + b"," + value
            )
        elif name == b"traceparent":
            if self._traceparent is None:
                self._traceparent = value
        elif name == b"upgrade":
            self._upgrade = value
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            raise _TooLarge  # httptools turns it into HttpParserCallbackError: a 400
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._mid = False
        body = self._body
        parser = self._parser
        upgrade = self._upgrade if parser.should_upgrade() else None
        self._queue.append(
            Request(
                parser.get_method(), self._url, self._headers,
                body[0] if len(body) == 1 else b"".join(body),
                # After an upgrade request the connection is a tunnel or nothing.
                upgrade is None and parser.should_keep_alive(),
                connection=self._connection, host=self._host, traceparent=self._traceparent,
                upgrade=upgrade,
            )
        )  # fmt: skip
        # Reset here rather than in on_message_begin: one callback fewer per request.
        self._url = b""
        self._headers = []
        self._connection = self._host = self._traceparent = self._upgrade = None
        self._body = []
        self._size = 0
        if len(self._queue) >= MAX_QUEUED and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    # -- for the handler --------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            assert self.transport is not None
            self.transport.write(data)

    def finish(self, keep_alive: bool) -> None:
        """The response to the current request is written; on to the next, or close."""
        self.busy = False
        self.backpressure = None
        if self.closed:
            return
        if not keep_alive:
            self.close()
        elif self._broken:
            self.write(_BAD_REQUEST)
            self.close()
        elif self._queue:
            self._next()
        elif self._eof:
            self.close()

    def reply(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer the current request with a response the mesh makes (401, 403, 404, 503...)."""
        self.write(http1.text_response(status, body, keep_alive=keep_alive, headers=headers))
        self.finish(keep_alive)

    def close(self) -> None:
        self.closed = True
        self._plain = False
        if self.transport is not None:
            self.transport.close()

    def pause_reading(self, paused: bool) -> None:
        """Stop (or resume) reading: an upstream joined by a tunnel cannot take more."""
        if self.transport is not None and not self.closed:
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def open_tunnel(self, sink: Callable[[bytes], None], closed: Callable[[], None]) -> None:
        """After a 101: every byte read from now on (and those held) goes to ``sink``."""
        self.busy = True  # for good: no request follows on this connection
        self._plain = False
        early, self._early = self._early or [], None
        if self.closed:
            closed()
            return
        self._tunnel, self._tunnel_closed = sink, closed
        for data in early:
            sink(data)
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- inside -----------------------------------------------------------

    def _next(self) -> None:
        request = self._queue.popleft()
        if self._reading_paused and len(self._queue) < MAX_QUEUED // 2:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        self.busy = True
        self._dispatch(self, request)

    def _upgraded(self, rest: bytes) -> None:
        """The parser stopped after an upgrade request: hold what follows for its tunnel."""
        self._early = []
        self._plain = False
        if rest:
            self._hold(rest)

    def _hold(self, data: bytes) -> None:
        assert self._early is not None
        self._early.append(data)
        # A client must wait for the 101 before it says much: pause, not buffer without end.
        if sum(map(len, self._early)) > 2**16 and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _bad_request(self) -> None:
        # Requests parsed before the bad bytes are answered first, in order.
        self._broken = True
        self._plain = False
        if self.busy:
            return
        if self._queue:
            self._next()
        else:
            self.write(_BAD_REQUEST)
            self.close()
