"""Telemetry across one hop on real sockets: proxy -> inbound (mTLS) -> replica."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

from dirigent.mesh.admin import Admin
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.telemetry import SpanBuffer, Telemetry
from dirigent.mesh.tls import ServiceTls

from .kit import Client, Replica, new_ca, now, on_uvloop, policy

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Hop:
    proxy: Proxy
    inbound: Inbound
    replica: Replica
    client: Client
    telemetry: Telemetry
    spans: SpanBuffer
    log: list[str]
    server: asyncio.Server

    def close(self) -> None:
        self.client.close()
        self.server.close()
        self.proxy.close()
        self.inbound.close()
        self.replica.close()


async def hop(mesh_yaml: str = "  mtls: STRICT\n") -> Hop:
    mesh = policy(mesh_yaml)
    ca, replica = new_ca(), Replica()
    spans, log = SpanBuffer(), []
    telemetry = Telemetry(spans=spans, access_log=log.append)
    loop = asyncio.get_running_loop()
    inbound = Inbound(
        "shop", "payments", mesh, ("127.0.0.1", await replica.start()),
        tls=ServiceTls(ca.issue("payments", now=now())), clock=loop.time,
        rng=random.Random(1), telemetry=telemetry,
    )  # fmt: skip
    await inbound.listen()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", inbound.listener.port)])
    proxy = Proxy(
        mesh, table, clock=loop.time, rng=random.Random(2), source="orders",
        tls=ServiceTls(ca.issue("orders", now=now())), telemetry=telemetry,
    )  # fmt: skip
    server = await proxy.listen()
    client = Client(server.sockets[0].getsockname()[1])
    return Hop(proxy, inbound, replica, client, telemetry, spans, log, server)


async def scrape(admin: Admin) -> tuple[int, bytes]:
    server = await admin.listen()
    client = Client(server.sockets[0].getsockname()[1])
    try:
        reply = await client.request("/metrics", host="localhost")
    finally:
        client.close()
        server.close()
    return reply.status, reply.body


@on_uvloop
async def test_metrics_count_requests_by_source_destination_route_and_status_on_both_sides() -> (
    None
):
    h = await hop()
    try:
        for _ in range(3):
            await h.client.request("/charge")
        h.replica.status = 500
        await h.client.request("/charge")
        status, text = await scrape(Admin(h.telemetry.metrics))
    finally:
        h.close()
    assert status == 200
    source = 'reporter="source",source="orders",destination="payments",route="default"'
    callee = (
        'reporter="destination",source="spiffe://shop/service/orders",'
        'destination="payments",route="default"'
    )
    lines = set(text.decode().splitlines())
    for labels in (source, callee):
        assert f'dirigent_mesh_requests_total{{{labels},status="200"}} 3' in lines
        assert f'dirigent_mesh_requests_total{{{labels},status="500"}} 1' in lines
        assert f'dirigent_mesh_request_duration_seconds_bucket{{{labels},le="+Inf"}} 4' in lines
        assert f"dirigent_mesh_request_duration_seconds_count{{{labels}}} 4" in lines
        assert f"dirigent_mesh_requests_in_flight{{{labels}}} 0" in lines
    assert "# TYPE dirigent_mesh_request_duration_seconds histogram" in lines


@on_uvloop
async def test_a_traceparent_is_continued_with_a_new_span_at_each_hop() -> None:
    h = await hop()
    incoming = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()
    try:
        reply = await h.client.request("/charge", headers=[(b"traceparent", incoming)])
    finally:
        h.close()
    seen = reply.header("x-seen-traceparent")
    assert seen is not None
    assert seen.startswith(f"00-{TRACE_ID}-")
    assert seen.endswith("-01")
    client_span, server_span = sorted(h.spans.spans, key=lambda s: s.kind)
    assert (client_span.kind, server_span.kind) == ("client", "server")
    assert client_span.trace_id == server_span.trace_id == TRACE_ID
    assert client_span.parent_id == "00f067aa0ba902b7"
    assert server_span.parent_id == client_span.span_id
    # the replica's parent is the inbound hop's span
    assert seen == f"00-{TRACE_ID}-{server_span.span_id}-01"


@on_uvloop
async def test_a_request_without_a_traceparent_starts_a_trace() -> None:
    h = await hop()
    try:
        reply = await h.client.request("/charge")
    finally:
        h.close()
    seen = reply.header("x-seen-traceparent")
    assert seen is not None
    version, trace_id, parent, flags = seen.split("-")
    assert (version, flags, len(trace_id), len(parent)) == ("00", "01", 32, 16)
    root = next(s for s in h.spans.spans if s.kind == "client")
    assert root.parent_id is None
    assert root.trace_id == trace_id


@on_uvloop
async def test_each_hop_writes_one_json_access_log_line_per_request() -> None:
    h = await hop()
    try:
        await h.client.request("/charge?id=7", method="POST", body=b"x")
    finally:
        h.close()
    entries = [json.loads(line) for line in h.log]
    assert sorted(e["kind"] for e in entries) == ["client", "server"]
    for entry in entries:
        assert entry["destination"] == "payments"
        assert entry["method"] == "POST"
        assert entry["path"] == "/charge?id=7"
        assert entry["status"] == 200
        assert entry["duration_ms"] >= 0
    assert len({e["trace_id"] for e in entries}) == 1


@on_uvloop
async def test_the_admin_listener_serves_nothing_but_metrics() -> None:
    admin = Admin(Telemetry().metrics)
    server = await admin.listen()
    client = Client(server.sockets[0].getsockname()[1])
    try:
        reply = await client.request("/charge", host="localhost")
    finally:
        client.close()
        server.close()
    assert reply.status == 404
