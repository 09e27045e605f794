"""WebSocket (HTTP/1.1 Upgrade) through the mesh on real sockets: outbound, inbound, both hops.

The replica answers an upgrade request with ``101`` and then echoes every
byte back upper-cased, so a test sees bytes cross the tunnel both ways, in
order, including bytes the client sent right behind its upgrade request.
Authorization applies to the upgrade request like any other.
"""

from __future__ import annotations

import asyncio
import random

from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.tls import ServiceTls

from .kit import new_ca, now, on_uvloop, policy

UPGRADE = (
    b"GET /chat HTTP/1.1\r\nhost: payments\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)


class EchoReplica:
    """Answers an upgrade with 101, then echoes upper-cased; anything else gets 426."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.heads: list[bytes] = []
        self.closed = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        if b"upgrade: websocket" not in head.lower():
            writer.write(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        self.closed.set()
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def open_tunnel(
    port: int, early: bytes = b""
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE + early)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head, reader, writer


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), 10)


async def outbound_to(port: int, mesh: str = "  routes: {}\n") -> tuple[Proxy, asyncio.Server]:
    loop = asyncio.get_running_loop()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", port)])
    proxy = Proxy(policy(mesh), table, clock=loop.time, rng=random.Random(1), source="orders")
    return proxy, await proxy.listen()


@on_uvloop
async def test_the_outbound_proxy_relays_a_websocket_both_ways_until_the_client_closes() -> None:
    replica = EchoReplica()
    proxy, server = await outbound_to(await replica.start())
    try:
        head, reader, writer = await open_tunnel(server.sockets[0].getsockname()[1], b"early ")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"upgrade: websocket" in head.lower()
        assert b"connection: upgrade" in head.lower()
        assert await read_exactly(reader, 6) == b"EARLY "
        for message in (b"hello", b"world" * 1000):
            writer.write(message)
            assert await read_exactly(reader, len(message)) == message.upper()
        writer.close()
        await asyncio.wait_for(replica.closed.wait(), 10)  # the close reached the replica
    finally:
        server.close()
        proxy.close()
        replica.close()
    [sent] = replica.heads
    assert b"upgrade: websocket" in sent.lower()
    assert b"traceparent: 00-" in sent


@on_uvloop
async def test_a_replica_that_closes_its_websocket_closes_the_clients() -> None:
    loop = asyncio.get_running_loop()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\nbye")  # fmt: skip
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    proxy, server = await outbound_to(upstream.sockets[0].getsockname()[1])
    try:
        head, reader, writer = await open_tunnel(server.sockets[0].getsockname()[1])
        assert head.startswith(b"HTTP/1.1 101 ")
        rest = await asyncio.wait_for(reader.read(), 10)  # to the end: the proxy closed too
        writer.close()
    finally:
        server.close()
        proxy.close()
        upstream.close()
    assert rest == b"bye"
    del loop


@on_uvloop
async def test_an_upgrade_the_replica_refuses_is_answered_and_the_connection_closed() -> None:
    replica = EchoReplica()
    proxy, server = await outbound_to(await replica.start())
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1]
        )
        writer.write(UPGRADE.replace(b"upgrade: websocket", b"upgrade: h2c"))
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        server.close()
        proxy.close()
        replica.close()
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"connection: close" in answer


MESH = """\
  mtls: STRICT
  authorization:
    payments:
      policies:
        - name: orders-may-chat
          action: ALLOW
          rules: [{from: [orders], paths: [/chat]}]
"""


async def two_hops(caller: str) -> tuple[Proxy, asyncio.Server, Inbound, EchoReplica]:
    ca, replica = new_ca(), EchoReplica()
    loop = asyncio.get_running_loop()
    mesh = policy(MESH)
    inbound = Inbound(
        "shop", "payments", mesh, ("127.0.0.1", await replica.start()),
        tls=ServiceTls(ca.issue("payments", now=now())), clock=loop.time, rng=random.Random(1),
    )  # fmt: skip
    await inbound.listen()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", inbound.listener.port)])
    proxy = Proxy(
        mesh, table, clock=loop.time, rng=random.Random(2), source=caller,
        tls=ServiceTls(ca.issue(caller, now=now())),
    )  # fmt: skip
    return proxy, await proxy.listen(), inbound, replica


@on_uvloop
async def test_a_websocket_crosses_both_hops_over_mutual_tls_when_the_caller_is_allowed() -> None:
    proxy, server, inbound, replica = await two_hops("orders")
    try:
        head, reader, writer = await open_tunnel(server.sockets[0].getsockname()[1])
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(b"ping")
        assert await read_exactly(reader, 4) == b"PING"
        writer.close()
        await asyncio.wait_for(replica.closed.wait(), 10)  # closed through both hops
    finally:
        server.close()
        proxy.close()
        inbound.close()
        replica.close()
    [sent] = replica.heads
    assert b"x-forwarded-client-cert: By=spiffe://shop/service/payments;" in sent


@on_uvloop
async def test_authorization_applies_to_the_upgrade_request() -> None:
    proxy, server, inbound, replica = await two_hops("shipping")
    try:
        head, _, writer = await open_tunnel(server.sockets[0].getsockname()[1])
        writer.close()
    finally:
        server.close()
        proxy.close()
        inbound.close()
        replica.close()
    assert head.startswith(b"HTTP/1.1 403 ")
    assert replica.heads == []
