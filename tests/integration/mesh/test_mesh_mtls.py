"""Mutual TLS between listeners, on real TLS sockets: STRICT, PERMISSIVE, DISABLE, rotation.

The callee is an inbound listener in front of a replica; callers are plain
TCP clients, TLS clients with an identity from the mesh CA or from another
CA, and the caller's own outbound proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import ssl

from dirigent.mesh.ca import CertificateAuthority
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.tls import Rotator, ServiceTls, stop

from .kit import Client, Replica, client_context, new_ca, now, on_uvloop, policy, refused


def orders_tls(ca: CertificateAuthority) -> ssl.SSLContext:
    """A client presenting the identity the mesh CA gives "orders"."""
    return client_context(ca.issue("orders", now=now()), ca.trust_pem)


async def callee(
    mode: str, ca: CertificateAuthority, replica: Replica, service: str = "payments"
) -> Inbound:
    port = await replica.start()
    loop = asyncio.get_running_loop()
    inbound = Inbound(
        "shop", service, policy(f"  mtls: {mode}\n"), ("127.0.0.1", port),
        tls=ServiceTls(ca.issue(service, now=now())), clock=loop.time, rng=random.Random(1),
    )  # fmt: skip
    await inbound.listen()
    return inbound


@on_uvloop
async def test_strict_serves_a_caller_with_a_mesh_identity_and_tells_the_replica_who_called() -> (
    None
):
    ca, replica = new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    client = Client(inbound.listener.port, orders_tls(ca))
    try:
        reply = await client.request("/charge")
    finally:
        client.close()
        inbound.close()
        replica.close()
    assert reply.status == 200
    assert reply.header("x-seen-x-forwarded-client-cert") == (
        "By=spiffe://shop/service/payments;URI=spiffe://shop/service/orders"
    )


@on_uvloop
async def test_strict_refuses_a_plain_text_client() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    try:
        assert await refused(Client(inbound.listener.port))
    finally:
        inbound.close()
        replica.close()
    assert replica.served == 0
    assert inbound.listener.refused == 1


@on_uvloop
async def test_strict_refuses_a_client_whose_certificate_comes_from_another_ca() -> None:
    ca, other, replica = new_ca(), new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    # The client trusts the mesh CA, so only the server's check can refuse it.
    foreign = client_context(other.issue("orders", now=now()), ca.trust_pem)
    try:
        assert await refused(Client(inbound.listener.port, foreign))
    finally:
        inbound.close()
        replica.close()
    assert replica.served == 0


@on_uvloop
async def test_strict_refuses_a_tls_client_without_a_certificate() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    try:
        assert await refused(Client(inbound.listener.port, client_context(None, ca.trust_pem)))
    finally:
        inbound.close()
        replica.close()
    assert replica.served == 0


@on_uvloop
async def test_permissive_serves_plain_text_without_identity_and_mutual_tls_with_it() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("PERMISSIVE", ca, replica)
    plain = Client(inbound.listener.port)
    mutual = Client(inbound.listener.port, orders_tls(ca))
    try:
        plain_reply = await plain.request()
        mutual_reply = await mutual.request()
    finally:
        plain.close()
        mutual.close()
        inbound.close()
        replica.close()
    assert (plain_reply.status, mutual_reply.status) == (200, 200)
    assert plain_reply.header("x-seen-x-forwarded-client-cert") is None
    xfcc = mutual_reply.header("x-seen-x-forwarded-client-cert")
    assert xfcc is not None
    assert xfcc.endswith("URI=spiffe://shop/service/orders")


@on_uvloop
async def test_a_client_cannot_forge_its_identity_in_a_header() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("PERMISSIVE", ca, replica)
    client = Client(inbound.listener.port)
    forged = [(b"x-forwarded-client-cert", b"URI=spiffe://shop/service/admin")]
    try:
        reply = await client.request(headers=forged)
    finally:
        client.close()
        inbound.close()
        replica.close()
    assert reply.status == 200
    assert reply.header("x-seen-x-forwarded-client-cert") is None


@on_uvloop
async def test_disable_serves_plain_text_and_refuses_tls() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("DISABLE", ca, replica)
    plain = Client(inbound.listener.port)
    try:
        assert (await plain.request()).status == 200
        tls = orders_tls(ca)
        assert await refused(Client(inbound.listener.port, tls))
    finally:
        plain.close()
        inbound.close()
        replica.close()


@on_uvloop
async def test_the_outbound_proxy_calls_a_strict_callee_over_mutual_tls_as_its_service() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", inbound.listener.port)])
    loop = asyncio.get_running_loop()
    mesh = policy("  mtls: STRICT\n")
    proxy = Proxy(
        mesh, table, clock=loop.time, rng=random.Random(1), source="orders",
        tls=ServiceTls(ca.issue("orders", now=now())),
    )  # fmt: skip
    server = await proxy.listen()
    client = Client(server.sockets[0].getsockname()[1])
    try:
        replies = [await client.request("/charge") for _ in range(5)]
    finally:
        client.close()
        server.close()
        proxy.close()
        inbound.close()
        replica.close()
    assert [r.status for r in replies] == [200] * 5
    xfcc = replies[0].header("x-seen-x-forwarded-client-cert")
    assert xfcc is not None
    assert xfcc.endswith("URI=spiffe://shop/service/orders")


@on_uvloop
async def test_the_outbound_proxy_refuses_a_callee_presenting_another_services_identity() -> None:
    ca, replica = new_ca(), Replica()
    # The endpoint listed for "payments" presents the identity of "ledger".
    impostor = await callee("STRICT", ca, replica, service="ledger")
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", impostor.listener.port)])
    loop = asyncio.get_running_loop()
    proxy = Proxy(
        policy("  mtls: STRICT\n  routes:\n    payments:\n      retries: {attempts: 0}\n"),
        table, clock=loop.time, rng=random.Random(1), source="orders",
        tls=ServiceTls(ca.issue("orders", now=now())),
    )  # fmt: skip
    server = await proxy.listen()
    client = Client(server.sockets[0].getsockname()[1])
    try:
        reply = await client.request("/charge")
    finally:
        client.close()
        server.close()
        proxy.close()
        impostor.close()
        replica.close()
    assert reply.status == 503
    assert replica.served == 0


@on_uvloop
async def test_rotation_presents_a_new_certificate_without_dropping_established_connections() -> (
    None
):
    ca, replica = new_ca(), Replica()
    inbound = await callee("STRICT", ca, replica)
    tls = inbound.listener.tls
    assert tls is not None
    orders = orders_tls(ca)
    established = Client(inbound.listener.port, orders)
    await established.request()
    before = established.peer_certificate()

    # The rotator renews as soon as it is due: a fake sleep lets its first wait
    # pass at once and parks the second, so exactly one rotation happens.
    parked = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            parked.set()
            await asyncio.Event().wait()

    rotator = Rotator(
        tls, lambda: ca.issue("payments", now=now()), wall=lambda: now().timestamp(), sleep=sleep
    )
    task = rotator.start()
    await asyncio.wait_for(parked.wait(), timeout=30)
    fresh = Client(inbound.listener.port, orders)
    try:
        still = await established.request()
        new = await fresh.request()
        after = fresh.peer_certificate()
    finally:
        await stop(task)
        established.close()
        fresh.close()
        inbound.close()
        replica.close()
    assert rotator.rotations == 1
    assert (still.status, new.status) == (200, 200)
    assert before is not None
    assert after is not None
    assert before != after
    # The first wait was the renewal point of a 24 h identity: about half its life.
    assert 11 * 3600 < waits[0] < 13 * 3600


class _Stop(Exception):
    pass


def test_a_rotator_waits_half_the_lifetime_of_the_identity_it_holds() -> None:
    ca = new_ca()
    issued_at = now()
    identity = ca.issue("payments", now=issued_at, ttl=dt.timedelta(hours=2))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise _Stop

    rotator = Rotator(ServiceTls(identity), lambda: identity, wall=issued_at.timestamp, sleep=sleep)
    with contextlib.suppress(_Stop):
        asyncio.run(rotator.run())
    # Valid from a minute before issue to 2 h after: renewed an hour and half a
    # minute after its start, which is half a minute short of an hour from now.
    assert abs(waits[0] - (3600 - 30)) < 1
    assert rotator.rotations == 0
