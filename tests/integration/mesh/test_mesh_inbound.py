"""The inbound listener on real sockets: authorization by verified identity, fault injection."""

from __future__ import annotations

import asyncio
import random
import ssl

from dirigent.mesh.ca import CertificateAuthority
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.tls import ServiceTls

from .kit import Client, Replica, client_context, new_ca, now, on_uvloop, policy

AUTHZ = """\
  mtls: PERMISSIVE
  authorization:
    payments:
      policies:
        - name: no-admin
          action: DENY
          rules: [{paths: [/admin/*]}]
        - name: orders-may-charge
          action: ALLOW
          rules: [{from: [orders], methods: [POST], paths: [/charge]}]
"""


def orders_tls(ca: CertificateAuthority) -> ssl.SSLContext:
    return client_context(ca.issue("orders", now=now()), ca.trust_pem)


async def start(
    mesh_yaml: str, replica: Replica, ca: CertificateAuthority, seed: int = 1
) -> Inbound:
    mesh = policy(mesh_yaml)  # before anything starts, so a typo fails cleanly
    port = await replica.start()
    loop = asyncio.get_running_loop()
    inbound = Inbound(
        "shop", "payments", mesh, ("127.0.0.1", port),
        tls=ServiceTls(ca.issue("payments", now=now())), clock=loop.time,
        rng=random.Random(seed),
    )  # fmt: skip
    await inbound.listen()
    return inbound


@on_uvloop
async def test_an_allowed_caller_reaches_the_replica() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(AUTHZ, replica, ca)
    orders = Client(inbound.listener.port, orders_tls(ca))
    try:
        reply = await orders.request("/charge", method="POST", body=b"42")
    finally:
        orders.close()
        inbound.close()
        replica.close()
    assert (reply.status, reply.body) == (200, b"ok:42")


@on_uvloop
async def test_a_denied_call_gets_403_naming_the_policy_that_denied_it() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(AUTHZ, replica, ca)
    orders = Client(inbound.listener.port, orders_tls(ca))
    try:
        reply = await orders.request("/admin/users")
    finally:
        orders.close()
        inbound.close()
        replica.close()
    assert reply.status == 403
    assert reply.body == b"RBAC: access denied by policy no-admin\n"
    assert reply.header("x-dirigent-policy") == "no-admin"
    assert replica.served == 0


@on_uvloop
async def test_a_caller_no_allow_policy_names_is_denied_by_default() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(AUTHZ, replica, ca)
    shipping = Client(
        inbound.listener.port, client_context(ca.issue("shipping", now=now()), ca.trust_pem)
    )
    try:
        reply = await shipping.request("/charge", method="POST")
    finally:
        shipping.close()
        inbound.close()
        replica.close()
    assert reply.status == 403
    assert reply.body == b"RBAC: access denied by policy default-deny\n"


@on_uvloop
async def test_a_plain_text_caller_has_no_identity_and_matches_no_source_rule() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(AUTHZ, replica, ca)
    plain = Client(inbound.listener.port)
    try:
        reply = await plain.request("/charge", method="POST")
    finally:
        plain.close()
        inbound.close()
        replica.close()
    assert reply.status == 403


@on_uvloop
async def test_a_policy_change_applies_to_the_next_request_on_the_same_connection() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(AUTHZ, replica, ca)
    orders = Client(inbound.listener.port, orders_tls(ca))
    try:
        before = await orders.request("/charge", method="POST")
        inbound.set_policy(policy("  mtls: PERMISSIVE\n  authorization:\n    payments:\n"
                                  "      default: DENY\n"))  # fmt: skip
        after = await orders.request("/charge", method="POST")
    finally:
        orders.close()
        inbound.close()
        replica.close()
    assert (before.status, after.status) == (200, 403)


@on_uvloop
async def test_an_abort_fault_answers_its_status_without_calling_the_replica() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(
        "  routes:\n    payments:\n      fault: {abort: {status: 503, percent: 100}}\n",
        replica, ca,
    )  # fmt: skip
    client = Client(inbound.listener.port)
    try:
        replies = [await client.request() for _ in range(5)]
    finally:
        client.close()
        inbound.close()
        replica.close()
    assert [r.status for r in replies] == [503] * 5
    assert replies[0].body == b"fault filter abort\n"
    assert replica.served == 0


@on_uvloop
async def test_an_abort_fault_of_half_the_requests_aborts_about_half() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(
        "  routes:\n    payments:\n      fault: {abort: {status: 500, percent: 50}}\n",
        replica, ca, seed=7,
    )  # fmt: skip
    client = Client(inbound.listener.port)
    try:
        replies = [await client.request() for _ in range(400)]
    finally:
        client.close()
        inbound.close()
        replica.close()
    aborted = sum(r.status == 500 for r in replies)
    assert 140 <= aborted <= 260
    assert replica.served == 400 - aborted


@on_uvloop
async def test_a_delay_fault_holds_the_request_at_least_its_delay() -> None:
    ca, replica = new_ca(), Replica()
    inbound = await start(
        "  routes:\n    payments:\n      fault: {delay: {fixed: 0.3, percent: 100}}\n",
        replica, ca,
    )  # fmt: skip
    client = Client(inbound.listener.port)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        reply = await client.request()
        elapsed = loop.time() - started
    finally:
        client.close()
        inbound.close()
        replica.close()
    assert reply.status == 200
    assert elapsed >= 0.29  # uvloop's timers are millisecond-grained
    assert elapsed < 10.0
