"""Small HTTP helpers shared by the two front doors: bounded bodies.

This module must never decide who a caller is or what an action does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.types import Receive

from dirigent.api.protocol import MAX_BODY_BYTES, ApiError


class Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


def _too_large(size: int | str, limit: int) -> ApiError:
    return ApiError(
        "RequestEntityTooLargeException",
        f"Request body is {size} bytes; at most {limit} bytes are accepted",
        413,
    )


async def read_limited(declared: str | None, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, refused as soon as it is known to be larger than ``limit``.

    The declared length is checked before reading anything, and the count is
    kept while reading, so a client that lies about (or omits) the length
    still cannot make the server buffer more than ``limit`` bytes.
    """
    if declared is not None:
        if not declared.isdigit():
            raise ApiError("SerializationException", "Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(declared, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    return await read_limited(request.headers.get("content-length"), request.stream(), limit)


async def until_disconnected(receive: Receive) -> None:
    """Return once the client has gone away (the body having been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body's chunks straight from the ASGI ``receive`` channel."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
