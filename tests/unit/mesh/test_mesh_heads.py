"""The fast lane's head scanning reads every head it accepts exactly as httptools does.

``scan_request`` and ``scan_response`` (compiled, and their pure-Python
versions) may decline any head, and then httptools parses it; what they
accept must match httptools field for field. Generated heads mix the plain
case with the things that must send a head to httptools: odd methods,
targets and versions, obsolete or broken header lines, control bytes,
repeated or chunked framing, upgrades, truncation and pipelining.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirigent.mesh import heads
from dirigent.mesh.http1 import HOP_BY_HOP

REQUEST_SCANNERS = [pytest.param(heads.python_scan_request, id="python")]
REQUEST_READERS = [pytest.param(heads.python_read_request, id="python")]
RESPONSE_SCANNERS = [pytest.param(heads.python_scan_response, id="python")]
if heads.COMPILED:
    REQUEST_SCANNERS.append(pytest.param(heads.scan_request, id="compiled"))
    REQUEST_READERS.append(pytest.param(heads.read_request, id="compiled"))
    RESPONSE_SCANNERS.append(pytest.param(heads.scan_response, id="compiled"))


class Parsed:
    """What httptools reports for the first message in some bytes."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.completed = 0
        #: read where the listeners read it: a request's at its end, a response's after its head
        self.keep_alive: bool | None = None
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if isinstance(self.parser, httptools.HttpResponseParser):
            self.keep_alive = bool(self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.completed += 1
        if isinstance(self.parser, httptools.HttpRequestParser):
            self.keep_alive = bool(self.parser.should_keep_alive())


def parse(data: bytes, parser_type: type) -> tuple[Parsed, httptools.HttpRequestParser]:
    parsed = Parsed()
    parser = parsed.parser = parser_type(parsed)
    parser.feed_data(data)
    return parsed, parser


# -- generated requests -------------------------------------------------------

NAMES = [
    b"Host", b"host", b"HOST", b"Content-Length", b"content-length", b"Connection",
    b"connection", b"Transfer-Encoding", b"Upgrade", b"traceparent", b"Traceparent",
    b"Keep-Alive", b"X-Request-Id", b"accept", b"User-Agent", b"x y", b"", b"x\x00y", b"\xc3\xa9",
    b"x-a{", b"X-Ok_1",
]  # fmt: skip
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
VALUES = [
    b"payments", b"payments:8080", b"0", b"5", b"12", b"007", b"-1", b"1 2", b"abc",
    b"close", b"Close", b"keep-alive", b"Keep-Alive", b"upgrade", b"close, upgrade", b"x-a",
    b"chunked", b"gzip, chunked", b"websocket", TRACEPARENT,
    b"", b" ", b"a\tb", b"a\x01b", b"a\x7fb", b"caf\xc3\xa9", b"a ", b"a\t", b"*/*",
]  # fmt: skip
SEPARATORS = [b":", b": ", b":  ", b":\t", b" :", b": \t"]
ENDINGS = [b"\r\n"] * 8 + [b"\n", b"\r"]
METHODS = [
    b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"get", b"CONNECT",
    b"TRACE", b"PROPFIND", b"G ET", b"",
]  # fmt: skip
TARGETS = st.one_of(
    st.builds(
        lambda path: b"/" + path,
        st.binary(max_size=12).map(lambda b: bytes(c % 128 for c in b))
        | st.sampled_from(
            [b"", b"charge", b"a/b?c=d&e=f", b"x%20y", b"a#frag", b"[::1]", b"~u/'q'(1)*"]
        ),
    ),
    st.sampled_from([b"*", b"http://payments/charge", b"payments", b""]),
)
VERSIONS = st.sampled_from(
    [b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]
)
HEADER = st.tuples(
    st.sampled_from(NAMES) | st.text("abcXYZ-_.!~0", min_size=1, max_size=6).map(str.encode),
    st.sampled_from(SEPARATORS),
    st.sampled_from(VALUES),
    st.sampled_from(ENDINGS),
)


PLAIN_HEADER = st.tuples(
    st.sampled_from([b"Host", b"accept", b"User-Agent", b"X-Request-Id", b"traceparent", b"x-b"]),
    st.sampled_from([b": ", b":"]),
    st.sampled_from([b"payments", b"*/*", b"curl/8.0", b"a\tb", b"1 2", TRACEPARENT]),
    st.just(b"\r\n"),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    # Half of them plain but for one part at most, so that accepted heads are common.
    wild = draw(st.booleans())
    method = draw(st.sampled_from(METHODS if wild else METHODS[:7]))
    target = draw(TARGETS) if wild else b"/" + draw(st.sampled_from([b"", b"charge", b"a?b=c"]))
    version = draw(VERSIONS) if wild else b"HTTP/1.1"
    line = method + b" " + target + b" " + version + b"\r\n"
    header = HEADER if wild else st.one_of(PLAIN_HEADER, PLAIN_HEADER, PLAIN_HEADER, HEADER)
    header_lines = b"".join(b"".join(h) for h in draw(st.lists(header, max_size=6)))
    body = draw(st.binary(max_size=8))
    if draw(st.booleans()):
        header_lines += b"Content-Length: %d\r\n" % len(body)
    data = line + header_lines + b"\r\n" + body
    if draw(st.booleans()):
        data += b"GET /next HTTP/1.1\r\nHost: payments\r\n\r\n"  # pipelined
    cut = draw(st.integers(0, len(data)))
    return data if draw(st.integers(0, 3)) else data[:cut]


@pytest.mark.parametrize("scan", REQUEST_SCANNERS)
@given(data=requests())
@settings(max_examples=1500, deadline=None)
def test_an_accepted_request_head_reads_as_httptools_reads_it(
    scan: Callable[[bytes], heads.RequestScan | None], data: bytes
) -> None:
    found = scan(data)
    assert found == heads.python_scan_request(data)
    if found is None:
        return
    method, target, headers, end, length, keep_alive, host, connection, traceparent = found
    assert end + length <= len(data) or data.find(b"\r\n\r\n") + 4 == end
    parsed, parser = parse(data[: end + length], httptools.HttpRequestParser)
    assert parser.get_method() == method
    assert parsed.url == target
    assert parsed.headers == headers
    assert not parser.should_upgrade()
    values = dict(reversed(headers))  # the first of each name
    assert host == values.get(b"host")
    assert traceparent == values.get(b"traceparent")
    assert connection == values.get(b"connection")
    if end + length <= len(data):
        assert parsed.completed == 1
        assert parsed.keep_alive == keep_alive
        assert parsed.body == data[end : end + length]


Reader = Callable[[bytes, int], heads.Request | None]


def fields(request: heads.Request | None) -> tuple[object, ...] | None:
    if request is None:
        return None
    return tuple(getattr(request, name) for name in heads.Request.__slots__)


@pytest.mark.parametrize("read", REQUEST_READERS)
@given(data=requests(), max_body=st.integers(0, 10))
@settings(max_examples=1500, deadline=None)
def test_a_request_is_read_whole_exactly_when_the_scan_spans_all_the_data(
    read: Reader, data: bytes, max_body: int
) -> None:
    found = heads.python_scan_request(data)
    request = read(data, max_body)
    if found is None or found[3] + found[4] != len(data) or found[4] > max_body:
        assert request is None
        return
    assert type(request) is heads.Request
    method, target, headers, end, _, keep_alive, host, connection, traceparent = found
    assert fields(request) == fields(
        heads.Request(
            method, target, headers, data[end:], keep_alive, connection, host, traceparent
        )
    )


@pytest.mark.parametrize("read", REQUEST_READERS)
def test_a_read_request_is_an_ordinary_request(read: Reader) -> None:
    data = b"POST /charge HTTP/1.1\r\nHost: payments\r\nContent-Length: 2\r\n\r\nok"
    request = read(data, 2)
    assert request is not None
    assert (request.method, request.target, request.body) == (b"POST", b"/charge", b"ok")
    assert request.header(b"content-length") == b"2"
    assert request.upgrade is None
    assert read(data, 1) is None  # a body over the limit: httptools answers it


def test_the_compiled_reader_binds_no_class_it_cannot_fill() -> None:
    if not heads.COMPILED:
        pytest.skip("built without the extension")
    from dirigent.mesh import _heads

    class Loose:
        pass

    with pytest.raises(TypeError, match="__slots__ only"):
        _heads.bind_request_class(Loose)  # type: ignore[arg-type]
    # Request's slot descriptors on a class whose objects have no room for them:
    # filling those offsets would write past the end of each object.
    namespace: dict[str, object] = {"__slots__": ()}
    namespace.update({name: getattr(heads.Request, name) for name in heads.Request.__slots__})
    borrowing = type("Borrowing", (), namespace)
    with pytest.raises(TypeError, match="is not a slot"):
        _heads.bind_request_class(borrowing)  # type: ignore[arg-type]


def test_the_compiled_reader_keeps_the_class_bound_at_import() -> None:
    if not heads.COMPILED:
        pytest.skip("built without the extension")
    from dirigent.mesh import _heads

    class Fillable(heads.Request):
        __slots__ = ()

    with pytest.raises(TypeError, match="another class is bound already"):
        _heads.bind_request_class(Fillable)
    _heads.bind_request_class(heads.Request)  # the same class again: nothing changes
    request = heads.read_request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 0)
    assert type(request) is heads.Request
    assert request.method == b"GET"


@pytest.mark.parametrize("scan", REQUEST_SCANNERS)
def test_a_plain_request_is_scanned_whole(
    scan: Callable[[bytes], heads.RequestScan | None],
) -> None:
    data = b"POST /charge?id=7 HTTP/1.1\r\nHost: payments\r\nContent-Length: 2\r\n\r\nok"
    assert scan(data) == (
        b"POST", b"/charge?id=7", [(b"host", b"payments"), (b"content-length", b"2")],
        len(data) - 2, 2, True, b"payments", None, None,
    )  # fmt: skip


@pytest.mark.parametrize("scan", REQUEST_SCANNERS)
def test_common_and_long_header_names_read_as_any_other(
    scan: Callable[[bytes], heads.RequestScan | None],
) -> None:
    # The compiled scanner shares one object per common name and lowercases
    # names longer than its 32-byte buffer separately: neither may show.
    long_name = b"X-A-Header-Name-Longer-Than-Thirty-Two-Bytes"
    data = (
        b"GET / HTTP/1.1\r\nUSER-AGENT: wrk\r\nAccept: */*\r\nHost: p\r\n"
        + long_name + b": 1\r\nTraceParent: t\r\n\r\n"
    )  # fmt: skip
    found = scan(data)
    assert found is not None
    assert found[2] == [
        (b"user-agent", b"wrk"), (b"accept", b"*/*"), (b"host", b"p"), (long_name.lower(), b"1"),
        (b"traceparent", b"t"),
    ]  # fmt: skip
    assert (found[6], found[8]) == (b"p", b"t")
    assert found == heads.python_scan_request(data)


@pytest.mark.parametrize("scan", REQUEST_SCANNERS)
@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n",  # the head is not all there
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",  # obsolete line folding
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET http://payments/ HTTP/1.1\r\n\r\n",
    ],
)
def test_unusual_requests_are_left_to_httptools(
    scan: Callable[[bytes], heads.RequestScan | None], data: bytes
) -> None:
    assert scan(data) is None


# -- generated responses ------------------------------------------------------

STATUS_LINES = st.sampled_from(
    [b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 503 Service Unavailable",
     b"HTTP/1.1 404 Not Found", b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 204 No Content",
     b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 100 Continue", b"HTTP/1.0 200 OK",
     b"HTTP/1.1 20 OK", b"HTTP/1.1 999 Odd", b"HTTP/1.1 200 O\x01K", b"HTTP/1.1 2000 OK"]
)  # fmt: skip


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    wild = draw(st.booleans())
    line = (draw(STATUS_LINES) if wild else b"HTTP/1.1 200 OK") + b"\r\n"
    header = HEADER if wild else st.one_of(PLAIN_HEADER, PLAIN_HEADER, PLAIN_HEADER, HEADER)
    header_lines = b"".join(b"".join(h) for h in draw(st.lists(header, max_size=5)))
    body = draw(st.binary(max_size=8))
    if draw(st.integers(0, 3)):
        header_lines += b"content-length: %d\r\n" % len(body)
    data = line + header_lines + b"\r\n" + body
    cut = draw(st.integers(0, len(data)))
    return data if draw(st.integers(0, 3)) else data[:cut]


@pytest.mark.parametrize("scan", RESPONSE_SCANNERS)
@given(data=responses())
@settings(max_examples=1500, deadline=None)
def test_a_response_head_passed_on_unchanged_reads_as_httptools_reads_it(
    scan: Callable[[bytes], heads.ResponseScan | None], data: bytes
) -> None:
    found = scan(data)
    assert found == heads.python_scan_response(data)
    if found is None:
        return
    status, end, length = found
    parsed, parser = parse(data[: end + length], httptools.HttpResponseParser)
    assert parser.get_status_code() == status
    assert parsed.keep_alive
    names = [name for name, _ in parsed.headers]
    assert not HOP_BY_HOP.intersection(names)
    assert names.count(b"content-length") == 1
    assert dict(parsed.headers)[b"content-length"].lstrip(b"0") == (b"%d" % length).lstrip(b"0")
    if end + length <= len(data):
        assert parsed.completed == 1
        assert parsed.body == data[end : end + length]


@pytest.mark.parametrize("scan", RESPONSE_SCANNERS)
@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
        b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n",
    ],
)
def test_responses_that_cannot_pass_unchanged_are_left_to_httptools(
    scan: Callable[[bytes], heads.ResponseScan | None], data: bytes
) -> None:
    assert scan(data) is None
