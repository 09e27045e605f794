"""The fast lane forwards exactly what httptools' general path forwards, on real sockets.

Each scenario runs three times through the outbound proxy: with the
compiled helpers (:mod:`dirigent.mesh.heads`' scanning, forwarded header
block and traceparent, and the access-log line), with their pure-Python
versions, and with scanning turned off (every byte through httptools, as
before the fast lane, and the pure-Python helpers). The upstreams must
receive the same bytes each time, and the client the same responses (read
back as status, headers and body: a head passed on as it came keeps the
upstream's spelling, a rebuilt one is lowercased) and the same end of its
connection.

Every scenario runs under two policies: ``raw`` (the default route, one
upstream) and ``full`` (a matched route with retries, a timeout and a
header rewrite, outlier detection and a retry budget, two upstreams taken
in turn, spans and an access log, on a clock that stands still so the
records can be compared too).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Callable

import httptools
import pytest

from dirigent.mesh import heads, outbound, telemetry, upstream, wire
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.telemetry import Span, SpanBuffer, Telemetry

from .kit import on_uvloop, policy

PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: plain\r\n\r\nhello"
#: what each lane puts in place of the helpers the listeners import from heads
Lane = dict[tuple[object, str], Callable[..., object]]
PYTHON_HELPERS: Lane = {
    (outbound, "header_block"): heads.python_header_block,
    (outbound, "next_traceparent"): heads.python_next_traceparent,
    (telemetry, "access_line"): telemetry.python_access_line,
}
LANES: dict[str, Lane] = {
    "python": {
        (wire, "read_request"): heads.python_read_request,
        (upstream, "scan_response"): heads.python_scan_response,
        **PYTHON_HELPERS,
    },
    "httptools only": {
        (wire, "read_request"): lambda data, max_body: None,
        (upstream, "scan_response"): lambda data: None,
        **PYTHON_HELPERS,
    },
}
if heads.COMPILED:
    LANES["compiled"] = {
        (wire, "read_request"): heads.read_request,
        (upstream, "scan_response"): heads.scan_response,
        (outbound, "header_block"): heads.header_block,
        (outbound, "next_traceparent"): heads.next_traceparent,
        (telemetry, "access_line"): telemetry.access_line,
    }

#: one response as the client reads it: status, (lowercased name, value) sorted, body
Response = tuple[int, list[tuple[bytes, bytes]], bytes]
#: what one run gives: the upstreams' reads, the client's responses, whether
#: the proxy closed, the access-log lines and the spans
Outcome = tuple[list[bytes], list[Response], bool, list[str], list[Span]]
FULL = """\
  destinations:
    payments:
      outlier_detection: {consecutive_5xx: 5, base_ejection_time: 30}
      retry_budget: {percent: 20, min_concurrency: 3}
  routes:
    payments:
      timeout: 5
      retries: {attempts: 2, retry_on: 5xx}
      headers: {request: {set: {x-mesh: dirigent, Accept: text/plain}}}
      rules:
        - {name: api, match: {path: {prefix: /}}}
"""
#: policy name -> (mesh section, number of upstreams)
POLICIES = {"raw": ("  routes: {}\n", 1), "full": (FULL, 2)}


class _Responses:
    def __init__(self) -> None:
        self.done: list[Response] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = b""
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), sorted(self._headers), self._body))
        self._headers, self._body = [], b""


async def run_scenario(
    pieces: list[bytes], answer: bytes, count: int, mesh: str = "raw"
) -> Outcome:
    """What one run through the proxy under the ``mesh`` policy gives."""
    section, upstreams = POLICIES[mesh]
    seen: list[bytes] = []
    names: dict[bytes, bytes] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                # The Host names the upstream's port, new in every run.
                for address, name in names.items():
                    head = head.replace(address, name)
                seen.append(head + await reader.readexactly(length))
                writer.write(answer)
                await writer.drain()
                if b"close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    servers = [await asyncio.start_server(serve, "127.0.0.1", 0) for _ in range(upstreams)]
    ports = sorted(server.sockets[0].getsockname()[1] for server in servers)
    # Named by their order in the endpoint table, which is the order of their ports.
    names.update({b"127.0.0.1:%d" % port: b"upstream-%d" % i for i, port in enumerate(ports)})
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", port) for port in ports])
    log: list[str] = []
    spans = SpanBuffer()
    proxy = Proxy(
        policy(section), table, clock=lambda: 100.0, wall=lambda: 1_700_000_000.25,
        rng=random.Random(7), telemetry=Telemetry(spans=spans, access_log=log.append),
    )  # fmt: skip
    listener = await proxy.listen()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", listener.sockets[0].getsockname()[1]
    )
    responses = _Responses()
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)  # each piece its own read on the proxy's side
        while len(responses.done) < count:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "the proxy closed before answering"
            responses.parser.feed_data(data)
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.1) == b""
        except TimeoutError:
            closed = False
    finally:
        writer.close()
        listener.close()
        for server in servers:
            server.close()
        proxy.close()
    return seen, responses.done, closed, log, spans.spans


GET = b"GET /charge HTTP/1.1\r\nHost: payments\r\nAccept: */*\r\n\r\n"
POST = b"POST /charge?id=1 HTTP/1.1\r\nHost: payments\r\nContent-Length: 4\r\n\r\nabcd"
SCENARIOS = {
    "a plain GET": ([GET], PLAIN, 1),
    "a POST with its body": ([POST], PLAIN, 1),
    "a head split across reads": ([GET[:20], GET[20:]], PLAIN, 1),
    "a body in a read of its own": ([POST[:-4], POST[-4:]], PLAIN, 1),
    "two requests pipelined in one read": ([GET + POST], PLAIN, 2),
    "keep-alive requests one after another": ([GET, POST, GET], PLAIN, 3),
    "connection: close from the client": (
        [b"GET / HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n"], PLAIN, 1,
    ),
    "a header the Connection header names": (
        [b"GET / HTTP/1.1\r\nHost: payments\r\nConnection: x-secret\r\nX-Secret: 1\r\n\r\n"],
        PLAIN, 1,
    ),
    "a chunked request body": (
        [b"POST / HTTP/1.1\r\nHost: payments\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"3\r\nabc\r\n0\r\n\r\n"], PLAIN, 1,
    ),
    "a traceparent to continue": (
        [b"GET / HTTP/1.1\r\nHost: payments\r\n"
         b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"],
        PLAIN, 1,
    ),
    "a chunked response": (
        [GET], b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1,
    ),
    "a response with a hop-by-hop header": (
        [GET], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nhi", 1,
    ),
    "a response that closes its connection": (
        [GET, GET], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", 2,
    ),
    "an error response": ([GET], b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", 1),
    "an answer the full policy retries": (
        [GET, GET], b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", 2,
    ),
}  # fmt: skip


@pytest.mark.parametrize("mesh", POLICIES)
@pytest.mark.parametrize("scenario", SCENARIOS)
@on_uvloop
async def test_every_lane_forwards_what_httptools_forwards(scenario: str, mesh: str) -> None:
    pieces, answer, count = SCENARIOS[scenario]
    results = {}
    for lane, helpers in LANES.items():
        with pytest.MonkeyPatch.context() as patch:
            for (module, name), helper in helpers.items():
                patch.setattr(module, name, helper)
            results[lane] = await run_scenario(pieces, answer, count, mesh)
    general = results.pop("httptools only")
    for lane, result in results.items():
        assert result == general, lane


@on_uvloop
async def test_a_plain_exchange_takes_the_fast_lane_both_ways() -> None:
    taken: list[str] = []

    def read_request(data: bytes, max_body: int) -> heads.Request | None:
        found = heads.read_request(data, max_body)
        taken.extend(["request"] if found is not None else [])
        return found

    def scan_response(data: bytes) -> heads.ResponseScan | None:
        found = heads.scan_response(data)
        taken.extend(["response"] if found is not None else [])
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wire, "read_request", read_request)
        patch.setattr(upstream, "scan_response", scan_response)
        _, responses, *_ = await run_scenario([GET, POST], PLAIN, 2)
    assert [status for status, _, _ in responses] == [200, 200]
    assert taken == ["request", "response", "request", "response"]


def test_without_the_extensions_the_listeners_use_the_pure_python_versions() -> None:
    # A fresh interpreter in which importing either compiled module fails, as
    # on a machine where pip found no C compiler.
    check = """
import sys
sys.modules["dirigent.mesh._heads"] = None
sys.modules["dirigent.mesh._accesslog"] = None
from dirigent.mesh import heads, inbound, outbound, telemetry, upstream, wire
assert not heads.COMPILED
assert wire.read_request is heads.python_read_request
assert upstream.scan_response is heads.python_scan_response
for module in (outbound, inbound):
    assert module.header_block is heads.python_header_block
    assert module.next_traceparent is heads.python_next_traceparent
assert telemetry.access_line is telemetry.python_access_line
"""
    subprocess.run([sys.executable, "-c", check], check=True)
