"""Runs one Dirigent listener for the mesh benchmark, in its own process.

``raw``: the outbound proxy with no policy beyond the default route, and no
metrics sinks beyond the always-on counters. ``full``: routing with a match,
retries with a budget, outlier detection, a header rewrite, metrics, tracing
and access logs to /dev/null. ``mtls``: ``full``, calling an inbound
listener over mutual TLS (two hops, two listeners in this one process).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sys

import uvloop

from dirigent.manifest import parse_manifest
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.section import MESH_SECTIONS
from dirigent.mesh.telemetry import Telemetry

FULL = """\
  mtls: {mtls}
  destinations:
    payments:
      outlier_detection: {{consecutive_5xx: 5, base_ejection_time: 30}}
      retry_budget: {{percent: 20, min_concurrency: 3}}
  routes:
    payments:
      timeout: 5
      retries: {{attempts: 2, retry_on: 5xx}}
      headers: {{request: {{set: {{x-mesh: dirigent}}}}}}
      rules:
        - {{name: api, match: {{path: {{prefix: /}}}}}}
"""


def policy(text: str) -> MeshPolicy:
    found = parse_manifest(f"app: bench\nmesh:\n{text}", sections=MESH_SECTIONS).extensions["mesh"]
    assert isinstance(found, MeshPolicy)
    return found


async def main(mode: str, port: int, upstream: int) -> None:
    loop = asyncio.get_running_loop()
    table = EndpointTable()
    tls = None
    if mode == "raw":
        mesh = policy("  routes: {}\n")
        telemetry = Telemetry(spans=None)
        table.update("payments", [Endpoint("127.0.0.1", upstream)])
    else:
        mesh = policy(FULL.format(mtls="STRICT" if mode == "mtls" else "DISABLE"))
        sink = open("/dev/null", "w")  # noqa: SIM115 - lives as long as the process
        telemetry = Telemetry(access_log=lambda line: sink.write(line + "\n"))
        if mode == "mtls":
            # Only here: the CA brings ``cryptography``, which the other modes
            # must not carry in their RSS, as a mesh worker without TLS does not.
            from dirigent.mesh.ca import CertificateAuthority
            from dirigent.mesh.tls import ServiceTls

            ca = CertificateAuthority.create("bench", now=dt.datetime.now(dt.UTC))
            now = dt.datetime.now(dt.UTC)
            inbound = Inbound(
                "bench", "payments", mesh, ("127.0.0.1", upstream),
                tls=ServiceTls(ca.issue("payments", now=now)), clock=loop.time,
                rng=random.Random(2), telemetry=telemetry,
            )  # fmt: skip
            await inbound.listen()
            table.update("payments", [Endpoint("127.0.0.1", inbound.listener.port)])
            tls = ServiceTls(ca.issue("orders", now=now))
        else:
            table.update("payments", [Endpoint("127.0.0.1", upstream)])
    proxy = Proxy(
        mesh, table, clock=loop.time, rng=random.Random(1), source="orders", tls=tls,
        telemetry=telemetry,
    )  # fmt: skip
    server = await proxy.listen("127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
