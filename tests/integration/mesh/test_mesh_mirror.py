"""Traffic mirroring on real sockets: copies arrive, and never delay or fail the primary."""

from __future__ import annotations

import asyncio
import random
import time

from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy

from .kit import Client, Replica, on_uvloop, policy

MIRRORED = "  routes:\n    payments:\n      mirror: {service: audit, percent: %s}\n"


async def mesh(
    payments: Replica, audit: Replica | None, percent: float = 100
) -> tuple[Proxy, asyncio.Server, Client]:
    loop = asyncio.get_running_loop()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", await payments.start())])
    if audit is not None:
        table.update("audit", [Endpoint("127.0.0.1", await audit.start())])
    proxy = Proxy(
        policy(MIRRORED % percent), table, clock=loop.time, rng=random.Random(1), source="orders"
    )
    server = await proxy.listen()
    return proxy, server, Client(server.sockets[0].getsockname()[1])


async def settle(replica: Replica, count: int) -> None:
    for _ in range(200):
        if replica.served >= count:
            return
        await asyncio.sleep(0.01)


@on_uvloop
async def test_each_request_is_copied_to_the_mirror_marked_as_a_shadow() -> None:
    payments, audit = Replica("payments"), Replica("audit")
    proxy, server, client = await mesh(payments, audit)
    try:
        replies = [await client.request("/charge", method="POST", body=b"%d" % i) for i in range(5)]
        await settle(audit, 5)
    finally:
        client.close()
        server.close()
        proxy.close()
        payments.close()
        audit.close()
    assert [r.header("x-served-by") for r in replies] == ["payments"] * 5
    assert [r.body for r in replies] == [b"ok:%d" % i for i in range(5)]
    assert audit.served == 5
    assert {m.header(b"host") for m in audit.seen} == {b"payments-shadow"}
    assert sorted(m.target for m in audit.seen) == [b"/charge"] * 5
    # the copy carries the primary's trace context
    assert [m.header(b"traceparent") for m in audit.seen] == [
        m.header(b"traceparent") for m in payments.seen
    ]


@on_uvloop
async def test_a_slow_mirror_does_not_delay_the_primary() -> None:
    payments, audit = Replica("payments"), Replica("audit", delay=2.0)
    proxy, server, client = await mesh(payments, audit)
    try:
        began = time.monotonic()
        for _ in range(3):
            reply = await client.request("/charge")
            assert reply.status == 200
        took = time.monotonic() - began
    finally:
        client.close()
        server.close()
        proxy.close()
        payments.close()
        audit.close()
    assert took < 1.5


@on_uvloop
async def test_a_mirror_with_no_endpoint_or_a_refusing_one_does_not_fail_the_primary() -> None:
    payments = Replica("payments")
    proxy, server, client = await mesh(payments, None)
    try:
        first = await client.request("/charge")
        proxy.endpoints.update("audit", [Endpoint("127.0.0.1", 1)])  # nothing listens there
        second = await client.request("/charge")
        await asyncio.sleep(0.1)
        third = await client.request("/charge")
    finally:
        client.close()
        server.close()
        proxy.close()
        payments.close()
    assert (first.status, second.status, third.status) == (200, 200, 200)
    assert proxy.shadows == 0  # every copy that failed was let go


@on_uvloop
async def test_a_zero_share_copies_nothing() -> None:
    payments, audit = Replica("payments"), Replica("audit")
    proxy, server, client = await mesh(payments, audit, percent=0)
    try:
        for _ in range(5):
            await client.request("/charge")
        await asyncio.sleep(0.05)
    finally:
        client.close()
        server.close()
        proxy.close()
        payments.close()
        audit.close()
    assert (payments.served, audit.served) == (5, 0)
