"""One side of the cross-host mesh test, run inside a network namespace (``ip netns exec``).

``callee``: a replica on the namespace's loopback and, in front of it, an
inbound listener with the service's identity on the namespace's veth address,
in the policy's mTLS mode (faults are injected here, as the mesh does).

``caller``: an outbound proxy with the caller's identity on the namespace's
loopback whose only endpoint for ``payments`` is the callee's listener on the
other host, and a client that drives it on command.

Both read their identity (PEM, issued by the test's CA) from a JSON file and
their policy from the ``mesh:`` YAML given on the command line. They print
one JSON line when ready, then answer one JSON line per JSON command read
from stdin, and stop at end of input. This script must never touch anything
outside its namespace: it only listens and connects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

from dirigent.mesh import http1
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.identity import Identity
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.tls import ServiceTls

from .kit import Client, Replica, client_context, policy, refused

APP = "shop"


def read_identity(path: Path) -> Identity:
    fields = json.loads(path.read_text())
    return Identity(
        spiffe_id=fields["spiffe_id"],
        certificate_pem=fields["certificate_pem"].encode(),
        key_pem=fields["key_pem"].encode(),
        trust_pem=fields["trust_pem"].encode(),
        not_before=fields["not_before"],
        not_after=fields["not_after"],
    )


def write_identity(identity: Identity, path: Path) -> None:
    """The identity as JSON, readable by its owner only (it holds a private key)."""
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {
                "spiffe_id": identity.spiffe_id,
                "certificate_pem": identity.certificate_pem.decode(),
                "key_pem": identity.key_pem.decode(),
                "trust_pem": identity.trust_pem.decode(),
                "not_before": identity.not_before,
                "not_after": identity.not_after,
            }
        )
    )


class RemoteClient(Client):
    """The kit's client, towards an address on another host rather than loopback."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(port, tls)
        self.host = host

    async def connect(self) -> None:
        stream, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname="" if self.tls else None
        )
        self.reader = http1.MessageReader(stream, responses=True)


async def commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def callee(args: argparse.Namespace) -> None:
    replica = Replica("payments")
    replica_port = await replica.start()
    loop = asyncio.get_running_loop()
    inbound = Inbound(
        APP, "payments", policy(args.mesh, APP), ("127.0.0.1", replica_port),
        tls=ServiceTls(read_identity(args.identity)), clock=loop.time, rng=random.Random(),
    )  # fmt: skip
    listener = await inbound.listen(args.address, 0)
    say({"ready": True, "port": listener.port})
    stdin = await commands()
    try:
        while line := await stdin.readline():
            del line  # the only command: how much was served and refused so far
            say({"served": replica.served, "refused": listener.refused})
    finally:
        inbound.close()
        replica.close()


async def caller(args: argparse.Namespace) -> None:
    table = EndpointTable()
    table.update("payments", [Endpoint(args.callee, args.callee_port)])
    loop = asyncio.get_running_loop()
    identity = read_identity(args.identity)
    proxy = Proxy(
        policy(args.mesh, APP), table, clock=loop.time, rng=random.Random(), source="orders",
        tls=ServiceTls(identity),
    )  # fmt: skip
    server = await proxy.listen("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    say({"ready": True})
    stdin = await commands()
    try:
        while line := await stdin.readline():
            command = json.loads(line)
            if command["op"] == "load":
                fresh = proxy if command.get("fresh") else None
                path, count = command["path"], command["count"]
                say(await load(port, path, count, command["concurrency"], fresh))
            elif command["op"] == "probe":
                say({"refused": await probe(args, command["as"], identity)})
    finally:
        server.close()
        proxy.close()


async def load(
    port: int, path: str, count: int, concurrency: int, fresh: Proxy | None = None
) -> dict[str, Any]:
    """``count`` requests through the outbound proxy on ``concurrency`` keep-alive connections.

    With ``fresh``, that proxy's idle upstream connections are closed after
    every response, so each request opens a new connection across the hosts
    (a TCP and a TLS handshake), as a busy mesh with many callers does.
    """
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    left = iter(range(count))

    async def worker() -> None:
        client = Client(port)
        try:
            for _ in left:
                began = time.monotonic()
                try:
                    reply = await client.request(path)
                    statuses[str(reply.status)] += 1
                    if fresh is not None:
                        fresh.close()  # the pools stay usable: only idle connections close
                except (OSError, EOFError) as exc:
                    statuses[type(exc).__name__] += 1
                    client.close()
                latencies.append(time.monotonic() - began)
        finally:
            client.close()

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"statuses": statuses, "latencies": latencies, "seconds": time.monotonic() - began}


async def probe(args: argparse.Namespace, kind: str, identity: Identity) -> bool:
    """Whether the callee's listener refuses a client of ``kind`` coming from this host."""
    tls: ssl.SSLContext | None = None
    if kind == "foreign":
        # Trusts the mesh CA (so only the callee's check can refuse it) but
        # presents an identity from another CA.
        tls = client_context(read_identity(args.foreign), identity.trust_pem)
    elif kind == "mesh":
        tls = client_context(identity, identity.trust_pem)
    return await refused(RemoteClient(args.callee, args.callee_port, tls))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("callee", "caller"))
    parser.add_argument("--mesh", required=True, help="the body of the mesh: section (YAML)")
    parser.add_argument("--identity", type=Path, required=True)
    parser.add_argument("--address", help="callee: the veth address to listen on")
    parser.add_argument("--callee", help="caller: the callee host's address")
    parser.add_argument("--callee-port", type=int)
    parser.add_argument("--foreign", type=Path, help="caller: an identity from another CA")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(callee(args) if args.side == "callee" else caller(args))


if __name__ == "__main__":
    main()
