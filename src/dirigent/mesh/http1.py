"""HTTP/1.1 framing for the data plane: the bytes of heads and chunks, and a stream reader.

The listeners and upstream connections parse in asyncio Protocols
(:mod:`dirigent.mesh.wire`, :mod:`dirigent.mesh.upstream`) and frame what they
write with the functions here. :class:`MessageReader` is the stream-based
reader for code that holds asyncio streams (test clients and replicas): it
turns the bytes of one connection into messages: a
request (or response) head as soon as its headers are complete, then its body
in pieces as they arrive, so large bodies stream through without being held.
Several messages on one connection (keep-alive, pipelining) come out in order.
Writing re-frames bodies: a known length is kept, anything else goes out
chunked.

This module must never decide anything about routing or retries, and never
open a connection: it frames bytes on streams it is handed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import httptools

#: headers that describe one hop, never forwarded (RFC 9110 section 7.6.1)
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
     b"transfer-encoding", b"upgrade", b"proxy-authorization"}
)  # fmt: skip
_READ_SIZE = 65536


class ProtocolError(Exception):
    """The peer sent bytes that are not HTTP/1.1; the connection cannot go on."""


@dataclass(slots=True)
class Message:
    """One request or response: its head, then body pieces until ``complete``."""

    method: bytes = b""
    target: bytes = b""
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    keep_alive: bool = True
    head_done: bool = False
    complete: bool = False
    body: deque[bytes] = field(default_factory=deque)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        return int(value) if value is not None and value.isdigit() else None


class _Callbacks:
    """httptools calls these while parsing; they fill in the message being read."""

    def __init__(self, reader: MessageReader) -> None:
        self._reader = reader

    def on_message_begin(self) -> None:
        self._reader.messages.append(Message())

    def on_url(self, url: bytes) -> None:
        self._reader.messages[-1].target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._reader.messages[-1].headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        message = self._reader.messages[-1]
        message.head_done = True
        parser = self._reader.parser
        message.keep_alive = bool(parser.should_keep_alive())
        if isinstance(parser, httptools.HttpRequestParser):
            message.method = parser.get_method()
        else:
            message.status = parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._reader.messages[-1].body.append(body)

    def on_message_complete(self) -> None:
        self._reader.messages[-1].complete = True


class MessageReader:
    """Parses the messages arriving on one stream, requests or responses."""

    def __init__(self, stream: asyncio.StreamReader, *, responses: bool) -> None:
        self.stream = stream
        self.messages: deque[Message] = deque()
        callbacks = _Callbacks(self)
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser = (
            httptools.HttpResponseParser(callbacks)
            if responses
            else httptools.HttpRequestParser(callbacks)
        )
        self.eof = False

    async def _fill(self) -> None:
        data = await self.stream.read(_READ_SIZE)
        if not data:
            self.eof = True
            # A response without a length ends when the connection does.
            if isinstance(self.parser, httptools.HttpResponseParser) and self.messages:
                last = self.messages[-1]
                if last.head_done and not last.complete:
                    last.complete = True
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # WebSocket and other upgrades are not proxied yet; the head is kept.
            pass
        except httptools.HttpParserError as exc:
            raise ProtocolError(str(exc)) from exc

    async def head(self) -> Message | None:
        """The next message once its head is complete; None at a clean end of stream."""
        while not (self.messages and self.messages[0].head_done):
            if self.eof:
                if self.messages:
                    raise ProtocolError("connection closed inside a message head")
                return None
            await self._fill()
        return self.messages[0]

    async def body_piece(self, message: Message) -> bytes | None:
        """The next piece of ``message``'s body; None once it is all read."""
        while not message.body:
            if message.complete:
                self.messages.popleft()
                return None
            if self.eof:
                raise ProtocolError("connection closed inside a message body")
            await self._fill()
        return message.body.popleft()

    async def whole_body(self, message: Message, limit: int) -> bytes:
        """The entire body (for a request that may be retried); ProtocolError past ``limit``."""
        pieces, size = [], 0
        while (piece := await self.body_piece(message)) is not None:
            size += len(piece)
            if size > limit:
                raise ProtocolError(f"request body larger than {limit} bytes")
            pieces.append(piece)
        return b"".join(pieces)


def request_head(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body_length: int
) -> bytes:
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    _add_headers(parts, method, headers, body_length)
    return b"".join(parts)


def header_block(method: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """A request's header lines, the blank line and its body: all but the request line."""
    parts: list[bytes] = []
    _add_headers(parts, method, headers, len(body))
    parts.append(body)
    return b"".join(parts)


def _add_headers(
    parts: list[bytes], method: bytes, headers: list[tuple[bytes, bytes]], body_length: int
) -> None:
    # One join over a flat list: no intermediate line objects per header.
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if body_length or method in (b"POST", b"PUT", b"PATCH"):
        parts += (b"content-length: ", b"%d" % body_length, b"\r\n")
    parts.append(b"\r\n")


def response_head(
    status: int, headers: list[tuple[bytes, bytes]], *, length: int | None, keep_alive: bool
) -> bytes:
    status_line = _STATUS_LINES.get(status)
    if status_line is None:
        status_line = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))
    parts = [status_line]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if length is not None:
        parts += (b"content-length: ", b"%d" % length, b"\r\n")
    else:
        parts.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def switching_head(headers: list[tuple[bytes, bytes]], upgrade: bytes) -> bytes:
    """A ``101 Switching Protocols`` head passing an upgrade on, its hop-by-hop headers restored."""
    parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"connection: upgrade\r\nupgrade: ", upgrade, b"\r\n\r\n")
    return b"".join(parts)


_TEXT = (b"content-type", b"text/plain")


def text_response(
    status: int,
    body: bytes,
    *,
    keep_alive: bool,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> bytes:
    """A whole response the mesh makes itself (401, 403, 404, 429, 503, 504, faults)."""
    extra = [_TEXT, *headers] if headers else [_TEXT]
    return response_head(status, extra, length=len(body), keep_alive=keep_alive) + body


def chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


LAST_CHUNK = b"0\r\n\r\n"


def forwardable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The end-to-end headers: hop-by-hop ones and those named in Connection dropped."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if name not in HOP_BY_HOP and name not in named and name != b"content-length"
    ]


_REASONS = {
    200: b"OK", 201: b"Created", 204: b"No Content", 400: b"Bad Request",
    403: b"Forbidden", 404: b"Not Found", 409: b"Conflict", 429: b"Too Many Requests",
    500: b"Internal Server Error", 502: b"Bad Gateway", 503: b"Service Unavailable",
    504: b"Gateway Timeout",
}  # fmt: skip


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"Status")


#: status lines made once, not formatted per response
_STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, reason) for status, reason in _REASONS.items()
}
