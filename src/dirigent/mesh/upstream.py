"""Pooled keep-alive connections to upstream endpoints.

A connection that finished a response cleanly goes back to its endpoint's
idle list and serves the next request to that endpoint; one that failed,
timed out or was told to close is closed. Opening honours nothing but the
timeout it is given: limits are the breaker's business, in the proxy.

This module must never retry, choose an endpoint or look at a status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dirigent.mesh.http1 import MessageReader

#: idle connections kept per endpoint; more are closed when given back
MAX_IDLE = 64


@dataclass(slots=True)
class Connection:
    address: tuple[str, int]
    reader: MessageReader
    writer: asyncio.StreamWriter
    served: int = 0
    reused: bool = False
    #: whose connection limit this connection counts against (the proxy's
    #: per-destination state); the pool only compares it
    owner: object = None
    #: called once when the connection closes, and when it goes back idle
    on_close: Callable[[], None] | None = None
    on_idle: Callable[[], None] | None = None
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.on_close is not None:
            self.on_close()


class Pool:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, int], deque[Connection]] = {}
        #: a pool speaks TLS to every endpoint or to none; the outbound proxy
        #: keeps one pool of each
        self.tls = tls

    async def acquire(self, host: str, port: int) -> Connection:
        """An idle connection to the endpoint, or a new one (OSError if it cannot be made).

        A TLS handshake that fails (a callee outside the mesh CA) is an OSError too.
        """
        return self.take_idle(host, port) or await self.connect(host, port)

    def take_idle(self, host: str, port: int) -> Connection | None:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if not connection.writer.is_closing() and not connection.reader.eof:
                connection.reused = True
                return connection
            connection.close()
        return None

    def evict_idle(self, owner: object) -> bool:
        """Close one idle connection counted against ``owner``; False if it has none."""
        for idle in self._idle.values():
            for connection in idle:
                if connection.owner is owner:
                    idle.remove(connection)
                    connection.close()
                    return True
        return False

    async def connect(self, host: str, port: int) -> Connection:
        stream_reader, writer = await asyncio.open_connection(
            host, port, ssl=self.tls, server_hostname="" if self.tls else None
        )
        # Small requests and responses must not wait for Nagle's algorithm.
        raw = writer.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Connection((host, port), MessageReader(stream_reader, responses=True), writer)

    def release(self, connection: Connection) -> None:
        connection.served += 1
        idle = self._idle.setdefault(connection.address, deque())
        if len(idle) >= MAX_IDLE or connection.writer.is_closing():
            connection.close()
        else:
            idle.append(connection)
            if connection.on_idle is not None:
                connection.on_idle()

    def close(self) -> None:
        every = [connection for idle in self._idle.values() for connection in idle]
        self._idle.clear()
        for connection in every:
            connection.close()
