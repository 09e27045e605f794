"""Python's own cost per request in the outbound proxy: no sockets, no kernel.

One client connection and one pooled upstream connection of the proxy are
given fake transports that only collect what is written; a loop then feeds
the client side a request (as wrk sends it) and the upstream side its
response, again and again, so each round trip is one exchange through the
fast lane. The figure is the best of several batches: on a shared machine
the lowest is the one least disturbed. It isolates what this code controls
from what ``run.py`` measures around it (the kernel's TCP work, the event
loop's polling), and moves far less with other load.

    .venv/bin/python bench/mesh/inprocess.py [raw|full ...] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import uvloop
from serve import FULL, policy

from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.upstream import Connection
from dirigent.mesh.wire import ServerConnection

REQUEST = b"GET /charge HTTP/1.1\r\nHost: payments\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n\r\nhello, world\n"
)
UPSTREAM = ("127.0.0.1", 9)
BATCHES = 15


class CollectingTransport:
    """Stands for a socket's transport: keeps what is written, reports no socket."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:  # noqa: ARG002 - no socket here
        return default

    def close(self) -> None:
        pass


def proxy_for(mode: str) -> Proxy:
    """The proxy serve.py runs for ``mode``, on a loop clock, its access log to nowhere."""
    table = EndpointTable()
    table.update("payments", [Endpoint(*UPSTREAM)])
    clock = asyncio.get_running_loop().time
    if mode == "raw":
        return Proxy(
            policy("  routes: {}\n"), table, clock=clock, rng=random.Random(1), source="orders",
            telemetry=Telemetry(spans=None),
        )  # fmt: skip
    sink = Path("/dev/null").open("w")  # noqa: SIM115 - lives as long as the process
    return Proxy(
        policy(FULL.format(mtls="DISABLE")), table, clock=clock, rng=random.Random(1),
        source="orders", telemetry=Telemetry(access_log=lambda line: sink.write(line + "\n")),
    )  # fmt: skip


async def measure(mode: str, requests: int) -> float:
    """Best microseconds per request over several batches of ``requests``."""
    proxy = proxy_for(mode)
    upstream = Connection(UPSTREAM)
    upstream_transport = CollectingTransport()
    upstream.connection_made(upstream_transport)  # type: ignore[arg-type]
    upstream.keep_alive = True
    proxy.pool.release(upstream)  # idle in the pool, as after a first request
    client = ServerConnection(proxy._dispatch)  # what listen() wires up
    client_transport = CollectingTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]

    def batch(
        count: int, request: Callable[[bytes], None], response: Callable[[bytes], None]
    ) -> None:
        for _ in range(count):
            request(REQUEST)
            response(RESPONSE)
        upstream_transport.written.clear()
        client_transport.written.clear()

    batch(1000, client.data_received, upstream.data_received)  # warm-up
    assert proxy.pool.take_idle(UPSTREAM) is upstream, "the exchange did not end cleanly"
    proxy.pool.release(upstream)
    best = float("inf")
    for _ in range(BATCHES):
        started = time.perf_counter()
        batch(requests, client.data_received, upstream.data_received)
        best = min(best, (time.perf_counter() - started) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modes", nargs="*", help="raw and/or full (default: both)")
    parser.add_argument("--requests", type=int, default=30_000)
    args = parser.parse_args()
    modes = args.modes or ["raw", "full"]
    if not set(modes) <= {"raw", "full"}:
        parser.error("modes are raw and full")
    for mode in modes:
        print(f"{mode}: {uvloop.run(measure(mode, args.requests)):.2f} µs of Python per request")


if __name__ == "__main__":
    main()
