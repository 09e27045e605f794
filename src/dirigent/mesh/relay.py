"""Writing responses on a listener's connection: ones the mesh makes, and ones it passes on.

Shared by the outbound proxy, the inbound listener and the gateway so that a
403, a 401 or a relayed upstream response is framed the same way by each.

This module must never decide a status or choose an upstream: it writes
what it is handed.
"""

from __future__ import annotations

import asyncio

from dirigent.mesh import http1
from dirigent.mesh.upstream import Connection, Pool

_TEXT = (b"content-type", b"text/plain")


async def reply(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    keep_alive: bool,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A response the mesh makes itself (401, 403, 404, 429, 503, 504, faults)."""
    extra = [_TEXT, *headers] if headers else [_TEXT]
    writer.write(http1.response_head(status, extra, length=len(body), keep_alive=keep_alive) + body)
    await writer.drain()


async def relay(
    pool: Pool,
    connection: Connection,
    response: http1.Message,
    headers: list[tuple[bytes, bytes]],
    writer: asyncio.StreamWriter,
    *,
    head_only: bool,
    keep_alive: bool,
) -> None:
    """Stream ``response`` from ``connection`` to ``writer``, then give the connection back.

    A known length is kept; anything else is re-chunked. ConnectionError if
    the upstream breaks off mid-body (the client's response is then cut too).
    """
    no_body = head_only or response.status in (204, 304)
    length = 0 if no_body else response.content_length
    chunked = length is None
    head = http1.response_head(response.status, headers, length=length, keep_alive=keep_alive)
    try:
        piece = await connection.reader.body_piece(response)
        # The head and a small body usually fit one write: one syscall, one packet.
        if piece is None:
            writer.write(head + http1.LAST_CHUNK if chunked else head)
        else:
            writer.write(head + (http1.chunk(piece) if chunked else piece))
            while (piece := await connection.reader.body_piece(response)) is not None:
                writer.write(http1.chunk(piece) if chunked else piece)
                await writer.drain()
            if chunked:
                writer.write(http1.LAST_CHUNK)
    except (OSError, http1.ProtocolError):
        connection.close()
        raise ConnectionError("upstream broke off mid-body") from None
    await writer.drain()
    if response.keep_alive and not connection.reader.eof:
        pool.release(connection)
    else:
        connection.close()
