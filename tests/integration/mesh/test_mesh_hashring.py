"""Consistent hashing on real sockets: keys stick to an endpoint until it is ejected."""

from __future__ import annotations

import asyncio
import random

from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy

from .kit import Client, Replica, on_uvloop, policy

MESH = """\
  destinations:
    payments:
      load_balancer: {consistent_hash: {header: x-user}}
      outlier_detection: {consecutive_5xx: 1, base_ejection_time: 600, max_ejection_percent: 50}
  routes:
    payments:
      retries: {attempts: 0}
"""


@on_uvloop
async def test_a_key_moves_off_its_endpoint_once_that_endpoint_is_ejected() -> None:
    replicas = [Replica("a"), Replica("b"), Replica("c", status=500)]
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", await r.start()) for r in replicas])
    loop = asyncio.get_running_loop()
    proxy = Proxy(policy(MESH), table, clock=loop.time, rng=random.Random(1))
    server = await proxy.listen()
    client = Client(server.sockets[0].getsockname()[1])
    try:
        # Find a user whose key lands on the broken replica: its first call fails
        # and ejects it; every later call for that user must go elsewhere. Keys
        # that land on a healthy replica meanwhile must stay on it.
        homes: dict[bytes, set[str | None]] = {}
        for n in range(200):
            user = f"user-{n}".encode()
            first = await client.request(headers=[(b"x-user", user)])
            if first.status == 500:
                break
            again = await client.request(headers=[(b"x-user", user)])
            homes[user] = {first.header("x-served-by"), again.header("x-served-by")}
        else:
            raise AssertionError("no key landed on the broken replica")
        later = [await client.request(headers=[(b"x-user", user)]) for _ in range(5)]
    finally:
        client.close()
        server.close()
        proxy.close()
        for replica in replicas:
            replica.close()
    assert all(len(served_by) == 1 for served_by in homes.values())
    assert [r.status for r in later] == [200] * 5
    assert len({r.header("x-served-by") for r in later}) == 1  # and stick to their new one
    assert replicas[2].served == 1
