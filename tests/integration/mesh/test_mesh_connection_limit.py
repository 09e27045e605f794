"""The breaker's connection limit and pending queue on real sockets."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy

from .kit import Client, Replica, on_uvloop, policy

MESH = """\
  destinations:
    payments:
      connection_pool: {max_connections: 1, max_pending: 1}
  routes:
    payments:
      retries: {attempts: 0}
"""


@on_uvloop
async def test_past_max_connections_one_request_queues_and_the_rest_are_shed() -> None:
    # The replica holds each request long enough for all four to arrive while
    # the first is still in flight, even on a loaded machine.
    replica = Replica("a", delay=1.5)
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", await replica.start())])
    loop = asyncio.get_running_loop()
    proxy = Proxy(policy(MESH), table, clock=loop.time, rng=random.Random(1))
    server = await proxy.listen()
    clients = [Client(server.sockets[0].getsockname()[1]) for _ in range(4)]
    try:
        first = asyncio.ensure_future(clients[0].request())
        await asyncio.sleep(0.3)  # the first has its connection before the others ask
        rest = await asyncio.gather(*(c.request() for c in clients[1:]))
        replies = [await first, *rest]
    finally:
        for c in clients:
            c.close()
        server.close()
        proxy.close()
        replica.close()
    assert Counter(r.status for r in replies) == {200: 2, 503: 2}
    shed = [r for r in replies if r.status == 503]
    assert all(r.header("x-envoy-overloaded") == "true" for r in shed)
    # the queued request went out on the one connection once it was free
    assert replica.connections == 1
    assert replica.served == 2


@on_uvloop
async def test_within_the_limit_connections_are_reused_not_multiplied() -> None:
    replica = Replica("a")
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", await replica.start())])
    loop = asyncio.get_running_loop()
    proxy = Proxy(
        policy(MESH.replace("max_pending: 1", "max_pending: 100")), table,
        clock=loop.time, rng=random.Random(1),
    )  # fmt: skip
    server = await proxy.listen()
    clients = [Client(server.sockets[0].getsockname()[1]) for _ in range(8)]
    try:
        replies = await asyncio.gather(*(c.request() for c in clients for _ in range(1)))
    finally:
        for c in clients:
            c.close()
        server.close()
        proxy.close()
        replica.close()
    assert [r.status for r in replies] == [200] * 8
    assert replica.connections == 1
