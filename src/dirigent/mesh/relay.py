"""Relaying an upstream response to a listener's client as it arrives.

:class:`Relay` is the part every listener's per-request exchange shares (the
outbound proxy's and the inbound listener's): once the exchange has decided
to pass a response on, it frames the head, then writes each body piece the
upstream connection hands over. A known length is kept and the pieces go out
as the very ``bytes`` objects the event loop read (no copy, no re-framing);
anything else is re-chunked. The head waits for the first piece, so a small
response leaves in one write (one syscall, one packet), and is flushed on its
own when the body is slow to come. While it relays, a client that stops
taking bytes pauses the upstream's reading, so a slow client cannot make the
proxy hold a large body in memory.

An upgrade the upstream accepted (``101``) is a tunnel instead
(:meth:`Relay.begin_tunnel`): the ``101`` goes out with its ``Connection``
and ``Upgrade`` headers, then the client's connection and the upstream's are
joined, each writing what the other reads (each pausing the other's reading
while it cannot take more), until either closes, which closes the other.

This module must never decide a status, retry or choose an upstream: it
writes what it is handed.
"""

from __future__ import annotations

from dirigent.mesh import http1
from dirigent.mesh.upstream import Connection
from dirigent.mesh.wire import ServerConnection


class Relay:
    """Base of an exchange: forwards the response of ``connection`` to ``client``."""

    __slots__ = ("_chunked", "_pending", "client", "relaying")

    def __init__(self, client: ServerConnection) -> None:
        self.client = client
        self._pending = b""
        self._chunked = False
        #: the upstream connection whose response is being passed on, if any
        self.relaying: Connection | None = None

    def begin_relay(
        self,
        connection: Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        head_only: bool,
    ) -> None:
        # Positional: a keyword call costs more, and this runs per response.
        no_body = head_only or status in (204, 304)
        length = 0 if no_body else connection.length
        self._chunked = length is None
        self._pending = http1.response_head(status, headers, length=length, keep_alive=keep_alive)
        self.relaying = connection
        client = self.client
        client.backpressure = connection.pause_reading
        if client.writing_paused:
            connection.pause_reading(True)

    def response_body(self, piece: bytes) -> None:
        if self._chunked:
            piece = b"%x\r\n%s\r\n" % (len(piece), piece)
        pending = self._pending
        if pending:
            self._pending = b""
            self.client.write(pending + piece)
        else:
            self.client.write(piece)

    def response_flush(self) -> None:
        if self._pending:
            self.client.write(self._pending)
            self._pending = b""

    def end_relay(self) -> None:
        """The upstream's response is complete: write what is left of it."""
        tail = self._pending + http1.LAST_CHUNK if self._chunked else self._pending
        self._pending = b""
        if tail:
            self.client.write(tail)
        self.client.backpressure = None
        self.relaying = None

    def cut_relay(self, connection: Connection) -> bool:
        """``connection`` broke off: if its response was being passed on, the
        client's response is cut too (its connection closed); ``True`` then."""
        if self.relaying is not connection:
            return False
        self.relaying = None
        self.client.backpressure = None
        self.client.close()
        return True

    def begin_tunnel(self, connection: Connection, headers: list[tuple[bytes, bytes]]) -> None:
        """Pass the ``101`` on and join the client to ``connection`` both ways."""
        client = self.client
        client.write(http1.switching_head(headers, connection.upgrade or b"websocket"))
        client.backpressure = connection.pause_reading
        connection.open_tunnel(client.write, client.close, client.pause_reading)
        client.open_tunnel(connection.write, connection.close)
