"""Small HTTP helpers shared by the two front doors: bounded bodies and JSON errors.

This module must never decide who a caller is or what an action does.
"""

from __future__ import annotations

from starlette.requests import Request

from dirigent.api.protocol import MAX_BODY_BYTES, ApiError


def _too_large(size: int | str, limit: int) -> ApiError:
    return ApiError(
        "RequestEntityTooLargeException",
        f"Request body is {size} bytes; at most {limit} bytes are accepted",
        413,
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused as soon as it is known to be larger than ``limit``.

    The declared length is checked before reading anything, and the count is
    kept while reading, so a client that lies about (or omits) the length
    still cannot make the server buffer more than ``limit`` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError("SerializationException", "Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)
