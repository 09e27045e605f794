"""Recognising plain HTTP/1.1 message heads in one pass, for the data plane's fast lane.

The listeners parse with httptools, which calls back into Python once per
header and per message event. Most requests and responses crossing the mesh
are plain: a whole head in one read, a handful of headers, a body framed by
``Content-Length``. For those, three functions here answer in one call what
the parser's callbacks would have told piece by piece:

- :func:`scan_request` reads a request head at the start of ``data``: method,
  target, headers (names lowercased, values as sent), where the head ends,
  the body's length, whether the connection stays open, and the Host,
  Connection and traceparent values the listeners note while parsing;
- :func:`read_request` is :func:`scan_request` for the fast lane: when the
  data is exactly one whole request (the head, then all of its body and
  nothing more), the :class:`Request` itself;
- :func:`scan_response` says whether a response head may be passed on to
  the client byte for byte (it carries no hop-by-hop header and a
  ``Content-Length``) and gives its status, where it ends and the length.

Two more build what a listener sends on, from whatever parser read the
request, so the fast lane and the general path share them:

- :func:`header_block` writes a request's forwarded header lines (minus the
  dropped names, after the route's header rewrite) followed by a tail, as
  one bytes object: the loop over the headers, the rewrite and the join in
  one call;
- :func:`next_traceparent` is :func:`dirigent.mesh.policy.trace.next_traceparent`
  (the same draws, the same bytes) without the Python formatting.

The scanners return None for anything they do not recognise as plain: an unknown
method, a target that is not origin-form or holds unusual characters, a
version other than HTTP/1.1, ``Transfer-Encoding``, ``Upgrade``, a
``Connection`` other than ``close`` or ``keep-alive``, a repeated or odd
``Content-Length``, a header line that is not ``token: value`` with a
non-empty value free of control characters, non-ASCII bytes and trailing
blanks, or a head not yet all there. None is never an error: the caller
falls back to httptools, which then decides (and, for bad bytes, refuses).
That leaves these functions one duty only: whatever they accept must read
exactly as httptools reads it, which the unit tests check on generated
heads.

The functions are compiled (``_heads.c``) when the package is installed;
this module's pure-Python versions give the same answers and stand in when
the extension is missing (the unit tests hold the compiled ones to them).
This module must never do I/O or keep state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set

from dirigent.mesh.policy.headers import ByteOps, rewrite_bytes
from dirigent.mesh.policy.trace import next_traceparent

__all__ = [
    "COMPILED", "Request", "RequestScan", "ResponseScan", "header_block", "next_traceparent",
    "read_request", "scan_request", "scan_response",
]  # fmt: skip

#: (method, target, headers, end of head, body length, keep-alive, host, connection, traceparent)
RequestScan = tuple[
    bytes,
    bytes,
    list[tuple[bytes, bytes]],
    int,
    int,
    bool,
    bytes | None,
    bytes | None,
    bytes | None,
]
#: (status, end of head, body length)
ResponseScan = tuple[int, int, int]

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# A value: no leading blanks (they are skipped), no trailing ones, no controls.
_VALUE = rb"[\x21-\x7e](?:[\x21-\x7e \t]*[\x21-\x7e])?"
_LINES = rb"(?:" + _TOKEN + rb":[ \t]*" + _VALUE + rb"\r\n)*"
_REQUEST = re.compile(
    rb"(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) (/[-._~:/?\[\]@!$&'()*+,;=%0-9A-Za-z]*)"
    rb" HTTP/1\.1\r\n(" + _LINES + rb")\r\n"
)
_RESPONSE = re.compile(rb"HTTP/1\.1 ([0-9]{3})(?: [\x20-\x7e\t]*)?\r\n(" + _LINES + rb")\r\n")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")\r\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")
#: response headers that keep a head from passing on unchanged (hop-by-hop)
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
     b"transfer-encoding", b"upgrade", b"proxy-authorization"}
)  # fmt: skip


def scan_request(data: bytes) -> RequestScan | None:
    """A plain request head at the start of ``data``; None if it is not (or not all there)."""
    found = _REQUEST.match(data)
    if found is None:
        return None
    method, target, block = found.groups()
    headers: list[tuple[bytes, bytes]] = []
    host = connection = traceparent = None
    length: int | None = None
    keep_alive = True
    for name, value in _HEADER.findall(block):
        name = name.lower()
        if name == b"host":
            if host is None:
                host = value
        elif name == b"connection":
            lowered = value.lower()
            if connection is not None or lowered not in (b"close", b"keep-alive"):
                return None
            keep_alive = lowered != b"close"
            connection = value
        elif name == b"traceparent":
            if traceparent is None:
                traceparent = value
        elif name == b"content-length":
            if length is not None or not _DIGITS.fullmatch(value):
                return None
            length = int(value)
        elif name in (b"transfer-encoding", b"upgrade"):
            return None
        headers.append((name, value))
    return (
        method, target, headers, found.end(), length or 0, keep_alive, host, connection,
        traceparent,
    )  # fmt: skip


class Request:
    """One parsed request; a slotted object, not a dataclass, as one is made per request.

    Made by whichever parser read it: httptools' callbacks in
    :mod:`dirigent.mesh.wire`, or :func:`read_request` in the fast lane, whose
    compiled version fills the slots of a new instance directly (the class is
    the same either way; only ``__init__`` is skipped).
    """

    __slots__ = (
        "body", "connection", "headers", "host", "keep_alive", "method", "target", "traceparent",
        "upgrade",
    )  # fmt: skip

    def __init__(  # noqa: PLR0917 - positional too: one is made per request
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        connection: bytes | None = None,
        host: bytes | None = None,
        traceparent: bytes | None = None,
        upgrade: bytes | None = None,
    ) -> None:
        self.method = method
        self.target = target
        #: names lowercased, in the order the client sent them
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        #: the Connection header's value, if sent: it names more hop-by-hop headers
        self.connection = connection
        #: the Host header's value, noted while parsing (every listener reads it)
        self.host = host
        #: the first traceparent, noted while parsing (every hop continues it)
        self.traceparent = traceparent
        #: the protocol asked for, on an upgrade request the parser stopped at
        self.upgrade = upgrade

    def header(self, name: bytes) -> bytes | None:
        """The first value of ``name`` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def read_request(data: bytes, max_body: int) -> Request | None:
    """The :class:`Request` ``data`` holds, if it is one plain request, whole, and nothing after it.

    None if :func:`scan_request` does not recognise its head, if its body is
    not all there or is followed by more bytes, or if it is longer than
    ``max_body``. The compiled version fills a new instance's slots without
    ``__init__`` (the class is bound to it once, below).
    """
    found = python_scan_request(data)  # this module's, even when the compiled one is bound
    if found is None:
        return None
    method, target, headers, end, length, keep_alive, host, connection, trace = found
    if end + length != len(data) or length > max_body:
        return None
    body = data[end:] if length else b""
    return Request(method, target, headers, body, keep_alive, connection, host, trace)


def scan_response(data: bytes) -> ResponseScan | None:
    """A response head that may pass on unchanged (status, end, length); None otherwise."""
    found = _RESPONSE.match(data)
    if found is None:
        return None
    status = int(found.group(1))
    if status < 200 or status > 599 or status in (204, 304):
        return None  # framed by their status, not their length
    length: int | None = None
    for name, value in _HEADER.findall(found.group(2)):
        name = name.lower()
        if name in _HOP_BY_HOP:
            return None
        if name == b"content-length":
            if length is not None or not _DIGITS.fullmatch(value):
                return None
            length = int(value)
    if length is None:
        return None  # framed by the connection's end
    return status, found.end(), length


def header_block(
    headers: Sequence[tuple[bytes, bytes]],
    dropped: Set[bytes],
    ops: ByteOps | None,
    *tail: bytes,
) -> bytes:
    """``name: value`` lines of the headers not in ``dropped``, rewritten by ``ops``, then ``tail``.

    ``dropped`` is matched against the names as given (both parsers lowercase
    them); the rewrite is :func:`rewrite_bytes`, applied to what is left.
    """
    parts: list[bytes] = []
    if ops is None:
        for name, value in headers:
            if name not in dropped:
                parts += (name, b": ", value, b"\r\n")
    else:
        forwarded = [h for h in headers if h[0] not in dropped]
        for name, value in rewrite_bytes(ops, forwarded):
            parts += (name, b": ", value, b"\r\n")
    parts += tail
    return b"".join(parts)


#: the pure-Python versions, kept by name for the tests that hold the compiled ones to them
python_scan_request = scan_request
python_read_request = read_request
python_scan_response = scan_response
python_header_block = header_block
python_next_traceparent = next_traceparent

try:
    from dirigent.mesh._heads import (  # type: ignore[assignment]
        bind_request_class,
        header_block,
        next_traceparent,
        read_request,
        scan_request,
        scan_response,
    )
except ImportError:  # built without a C compiler: the pure-Python versions serve
    COMPILED = False
else:
    COMPILED = True
    bind_request_class(Request)
