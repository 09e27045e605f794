"""The data plane on real sockets: retries, timeouts, outlier ejection, splits, streaming.

A tiny upstream runs in the test's event loop (uvloop) behind the proxy; a
keep-alive client talks to the proxy. Assertions on time are one-sided and
generous: a 504 must not come *before* the timeout, and must come well within
seconds of it, which holds on a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvloop

from dirigent.manifest import parse_manifest
from dirigent.mesh import http1
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.section import MESH_SECTIONS

#: what an upstream does with its n-th request (from 1): (status, body, delay seconds)
Behaviour = Callable[[int, bytes], tuple[int, bytes, float]]


def on_uvloop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(test(*args, **kwargs))

    return run


@dataclass
class Upstream:
    name: str
    behaviour: Behaviour
    served: int = 0
    server: asyncio.Server | None = None
    chunked: bool = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        try:
            while (request := await reader.head()) is not None:
                body = await reader.whole_body(request, 2**20)
                self.served += 1
                status, text, delay = self.behaviour(self.served, body)
                if delay:
                    await asyncio.sleep(delay)
                headers = [(b"x-served-by", self.name.encode())]
                if self.chunked:
                    writer.write(http1.response_head(status, headers, length=None, keep_alive=True))
                    for i in range(0, len(text), 3):
                        writer.write(http1.chunk(text[i : i + 3]))
                        await writer.drain()
                    writer.write(http1.LAST_CHUNK)
                else:
                    head = http1.response_head(status, headers, length=len(text), keep_alive=True)
                    writer.write(head + text)
                await writer.drain()
        except (ConnectionError, http1.ProtocolError):
            pass
        except asyncio.CancelledError:
            # The loop is shutting down under a hanging reply; ending quietly
            # keeps asyncio from logging the cancelled handler as an error.
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Reply:
    status: int
    served_by: str
    body: bytes


@dataclass
class Client:
    port: int
    reader: http1.MessageReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def request(
        self, path: str = "/", *, method: str = "GET", body: bytes = b"", host: str = "payments"
    ) -> Reply:
        if self.writer is None:
            stream, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.reader = http1.MessageReader(stream, responses=True)
        assert self.reader is not None
        headers = [(b"host", host.encode())]
        self.writer.write(
            http1.request_head(method.encode(), path.encode(), headers, len(body)) + body
        )
        await self.writer.drain()
        response = await self.reader.head()
        assert response is not None
        text = b""
        while (piece := await self.reader.body_piece(response)) is not None:
            text += piece
        served = (response.header(b"x-served-by") or b"").decode()
        return Reply(response.status, served, text)

    def close(self) -> None:
        """Close the connection; a later request opens a new one."""
        if self.writer is not None:
            self.writer.close()
        self.writer = self.reader = None


@dataclass
class Mesh:
    proxy: Proxy
    port: int
    upstreams: list[Upstream] = field(default_factory=list)
    server: asyncio.Server | None = None
    offset: list[float] = field(default_factory=lambda: [0.0])

    def client(self) -> Client:
        return Client(self.port)

    def close(self) -> None:
        for upstream in self.upstreams:
            upstream.close()
        if self.server is not None:
            self.server.close()
        self.proxy.close()


async def mesh(
    mesh_yaml: str, upstreams: list[tuple[Upstream, dict[str, str]]], seed: int = 1
) -> Mesh:
    manifest = parse_manifest(f"app: shop\nmesh:\n{mesh_yaml}", sections=MESH_SECTIONS)
    policy = manifest.extensions["mesh"]
    assert isinstance(policy, MeshPolicy)
    table = EndpointTable()
    endpoints = []
    for upstream, labels in upstreams:
        port = await upstream.start()
        endpoints.append(Endpoint("127.0.0.1", port, frozenset(labels.items())))
    table.update("payments", endpoints)
    loop = asyncio.get_running_loop()
    offset = [0.0]
    # The policy clock runs with the loop's, plus an offset a test may advance
    # to let ejection times pass without waiting for them.
    proxy = Proxy(policy, table, clock=lambda: loop.time() + offset[0], rng=random.Random(seed))
    server = await proxy.listen()
    port = server.sockets[0].getsockname()[1]
    return Mesh(proxy, port, [u for u, _ in upstreams], server, offset)


def ok(_: int, body: bytes) -> tuple[int, bytes, float]:
    return 200, b"ok:" + body, 0.0


async def send(client: Client, count: int) -> list[Reply]:
    try:
        return [await client.request() for _ in range(count)]
    finally:
        client.close()


async def spread(m: Mesh, count: int, clients: int = 4) -> list[Reply]:
    """``count`` requests over several keep-alive connections at once."""
    pool = [m.client() for _ in range(clients)]
    try:
        parts = await asyncio.gather(*(send(c, count // clients) for c in pool))
    finally:
        for c in pool:
            c.close()
    return [reply for part in parts for reply in part]


@on_uvloop
async def test_retries_heal_an_upstream_that_fails_one_request_in_three() -> None:
    def flaky(n: int, body: bytes) -> tuple[int, bytes, float]:
        return (503, b"down", 0.0) if n % 3 == 0 else (200, b"ok", 0.0)

    upstream = Upstream("a", flaky)
    m = await mesh(
        "  routes:\n    payments:\n      retries: {attempts: 2, retry_on: 5xx}\n",
        [(upstream, {})],
    )
    try:
        replies = await send(m.client(), 300)
    finally:
        m.close()
    assert Counter(r.status for r in replies) == {200: 300}
    assert upstream.served >= 300 + 99  # every third try failed and was tried again


@on_uvloop
async def test_without_retries_the_same_upstream_fails_a_third_of_requests() -> None:
    def flaky(n: int, body: bytes) -> tuple[int, bytes, float]:
        return (503, b"down", 0.0) if n % 3 == 0 else (200, b"ok", 0.0)

    m = await mesh(
        "  routes:\n    payments:\n      retries: {attempts: 0}\n", [(Upstream("a", flaky), {})]
    )
    try:
        replies = await send(m.client(), 30)
    finally:
        m.close()
    assert Counter(r.status for r in replies) == {200: 20, 503: 10}


@on_uvloop
async def test_a_timeout_answers_504_on_time() -> None:
    def hangs(n: int, body: bytes) -> tuple[int, bytes, float]:
        return 200, b"late", 30.0

    m = await mesh(
        "  routes:\n    payments:\n      timeout: 0.3\n      retries: {attempts: 0}\n",
        [(Upstream("a", hangs), {})],
    )
    loop = asyncio.get_running_loop()
    client = m.client()
    try:
        started = loop.time()
        reply = await client.request()
        elapsed = loop.time() - started
    finally:
        client.close()
        m.close()
    assert reply.status == 504
    assert reply.body == b"upstream request timeout\n"
    assert elapsed >= 0.29  # uvloop's timers are millisecond-grained
    assert elapsed < 5.0  # generous: "on time", not a race with a loaded machine


@on_uvloop
async def test_per_try_timeouts_let_a_retry_reach_a_healthy_endpoint() -> None:
    def hangs(n: int, body: bytes) -> tuple[int, bytes, float]:
        return 200, b"late", 30.0

    m = await mesh(
        "  routes:\n    payments:\n      timeout: 5\n"
        "      retries: {attempts: 1, per_try_timeout: 0.2, retry_on: reset}\n",
        [(Upstream("slow", hangs), {}), (Upstream("fast", ok), {})],
    )
    try:
        replies = await send(m.client(), 4)
    finally:
        m.close()
    assert [r.status for r in replies] == [200] * 4
    assert {r.served_by for r in replies} == {"fast"}


@on_uvloop
async def test_an_outlier_is_ejected_and_readmitted_after_its_ejection_time() -> None:
    def broken(n: int, body: bytes) -> tuple[int, bytes, float]:
        return 500, b"broken", 0.0

    bad, good = Upstream("bad", broken), Upstream("good", ok)
    m = await mesh(
        "  destinations:\n    payments:\n"
        "      outlier_detection: {consecutive_5xx: 3, base_ejection_time: 60,"
        " max_ejection_percent: 50}\n"
        "  routes:\n    payments:\n      retries: {attempts: 0}\n",
        [(bad, {}), (good, {})],
    )
    client = m.client()
    try:
        # Round robin alternates: three failures from "bad" take six requests.
        warmup = await send(client, 6)
        ejected = await send(client, 20)
        m.offset[0] += 60  # the ejection time passes
        readmitted = await send(client, 4)
    finally:
        client.close()
        m.close()
    assert Counter(r.served_by for r in warmup) == {"bad": 3, "good": 3}
    assert {r.served_by for r in ejected} == {"good"}
    assert {r.status for r in ejected} == {200}
    assert "bad" in {r.served_by for r in readmitted}


@on_uvloop
async def test_a_90_10_split_lands_within_3_points_over_2000_requests() -> None:
    v1, v2 = Upstream("v1", ok), Upstream("v2", ok)
    m = await mesh(
        "  destinations:\n    payments:\n      subsets: {v1: {version: v1}, v2: {version: v2}}\n"
        "  routes:\n    payments:\n      split: {v1: 90, v2: 10}\n",
        [(v1, {"version": "v1"}), (v2, {"version": "v2"})],
        seed=2026,
    )
    try:
        replies = await spread(m, 2000)
    finally:
        m.close()
    counts = Counter(r.served_by for r in replies)
    assert counts["v1"] + counts["v2"] == 2000
    assert abs(counts["v2"] / 2000 - 0.10) <= 0.03


@on_uvloop
async def test_request_bodies_go_up_and_chunked_responses_stream_back() -> None:
    upstream = Upstream("a", ok, chunked=True)
    m = await mesh("  routes: {}\n", [(upstream, {})])
    client = m.client()
    try:
        first = await client.request("/charge", method="POST", body=b"amount=42")
        second = await client.request("/charge", method="POST", body=b"x" * 100_000)
    finally:
        client.close()
        m.close()
    assert (first.status, first.body) == (200, b"ok:amount=42")
    assert second.body == b"ok:" + b"x" * 100_000


@on_uvloop
async def test_a_request_no_route_matches_gets_404_and_an_unknown_service_503() -> None:
    m = await mesh(
        "  routes:\n    payments:\n      rules:\n        - {name: only, match: {path: /a}}\n",
        [(Upstream("a", ok), {})],
    )
    client = m.client()
    try:
        matched = await client.request("/a")
        unmatched = await client.request("/b")
        unknown = await client.request("/", host="nowhere")
    finally:
        client.close()
        m.close()
    assert matched.status == 200
    # the catch-all "default" route takes what the named rules do not
    assert unmatched.status == 200
    assert unknown.status == 503
