"""The mesh of one application on this machine, as ``dirigent up`` runs it.

For every service it runs an outbound listener (the service's replicas reach
other services through it: ``HTTP_PROXY``) with the service's own identity, and
for every replica slot an inbound listener in front of the replica that checks
mTLS and authorization and injects faults. The endpoint table lists a
service's inbound listeners of ready replicas only, updated the moment the
runtime reports a readiness change. The control plane's engine gets an
outbound listener of its own, identity ``engine``, so policies can name it.
Identities come from an in-memory certificate authority created at start and
are rotated before they expire; ``/metrics`` is served on an admin listener.
With ``mesh.gateway``, an ingress gateway (:mod:`dirigent.mesh.ingress`)
takes outside clients to services as the caller ``gateway``.

It implements the runtime's ``Traffic`` contract (environment, readiness,
load) and the host's companion contract (start, stop, describe). It must
never decide about replicas: it only follows what the runtime reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from dirigent.manifest import Manifest
from dirigent.mesh.addressing import replica_environment
from dirigent.mesh.admin import Admin
from dirigent.mesh.ca import CertificateAuthority
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.identity import Identity
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.ingress import Ingress
from dirigent.mesh.load import Counters, Load, measure
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.policy.fault import Abort, Delay, Fault
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.tls import Rotator, ServiceTls
from dirigent.mesh.tls import stop as stop_rotator


class FaultRequest(Protocol):
    """A run-time fault, as the runtime's control channel carries it."""

    @property
    def service(self) -> str: ...
    @property
    def delay(self) -> float: ...
    @property
    def delay_percent(self) -> float: ...
    @property
    def abort(self) -> int: ...
    @property
    def abort_percent(self) -> float: ...


#: the identity the control plane's engine calls services with
ENGINE = "engine"
#: the identity the ingress gateway calls services with
GATEWAY = "gateway"
LOOPBACK = "127.0.0.1"


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class AppMesh:
    def __init__(
        self,
        app: str,
        services: Sequence[str],
        policy: MeshPolicy,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        admin_port: int = 0,
    ) -> None:
        self.app = app
        self.services = tuple(services)
        self.policy = policy
        self.endpoints = EndpointTable()
        self.telemetry = Telemetry()
        self._wall, self._clock = wall, clock
        self._rng = rng or random.Random()
        self._admin_port = admin_port
        self._ca: CertificateAuthority | None = None
        self._tls: dict[str, ServiceTls] = {}
        self._rotators: list[asyncio.Task[None]] = []
        self._outbound: dict[str, tuple[Proxy, asyncio.Server]] = {}
        self._inbound: dict[tuple[str, int], tuple[Inbound, int, int]] = {}
        self._ready: set[tuple[str, int]] = set()
        #: the replica port each slot's inbound listener should front now
        self._wanted: dict[tuple[str, int], int] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._admin: asyncio.Server | None = None
        self._counters: dict[str, Counters] = {}
        self._ingress: Ingress | None = None

    # ------------------------------------------------------------------ companion

    async def start(self, services: object = None) -> None:
        del services  # the mesh follows readiness reports, not the host's directory
        self._ca = CertificateAuthority.create(self.app, now=_utc(self._wall()))
        for name in (*self.services, ENGINE):
            tls = ServiceTls(self._issue(name))
            self._tls[name] = tls
            self._rotators.append(
                Rotator(tls, functools.partial(self._issue, name), wall=self._wall).start()
            )
            proxy = Proxy(
                self.policy, self.endpoints, clock=self._clock, rng=self._rng, source=name,
                tls=tls, telemetry=self.telemetry, wall=self._wall,
            )  # fmt: skip
            self._outbound[name] = (proxy, await proxy.listen(LOOPBACK, 0))
        self._admin = await Admin(self.telemetry.metrics).listen(LOOPBACK, self._admin_port)
        if self.policy.gateway is not None:
            await self._start_gateway()

    async def _start_gateway(self) -> None:
        assert self.policy.gateway is not None
        tls = self._tls[GATEWAY] = ServiceTls(self._issue(GATEWAY))
        self._rotators.append(
            Rotator(tls, functools.partial(self._issue, GATEWAY), wall=self._wall).start()
        )
        ingress = Ingress(
            self.policy.gateway, self.policy, self.endpoints, tls, clock=self._clock,
            wall=self._wall, rng=self._rng, telemetry=self.telemetry, source=GATEWAY,
        )  # fmt: skip
        await ingress.start()
        self._ingress = ingress

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        for task in self._rotators:
            await stop_rotator(task)
        for proxy, server in self._outbound.values():
            server.close()
            proxy.close()
        for inbound, _, _ in self._inbound.values():
            inbound.close()
        if self._ingress is not None:
            await self._ingress.stop()
        if self._admin is not None:
            self._admin.close()

    def describe(self) -> dict[str, object]:
        return {
            "mesh": {
                "outbound": {name: self.outbound_port(name) for name in self._outbound},
                "metrics": f"http://{LOOPBACK}:{self.admin_port}/metrics",
                "endpoints": {s: [e.address for e in self.endpoints.get(s)] for s in self.services},
                **self._describe_gateway(),
            }
        }

    def _describe_gateway(self) -> dict[str, object]:
        if self._ingress is None:
            return {}
        return {"gateway": self._ingress.url, "jwks_problem": self._ingress.jwks_problem}

    @property
    def admin_port(self) -> int | None:
        if self._admin is None or not self._admin.sockets:
            return None
        port: int = self._admin.sockets[0].getsockname()[1]
        return port

    def outbound_port(self, service: str) -> int:
        port: int = self._outbound[service][1].sockets[0].getsockname()[1]
        return port

    def engine_proxy(self) -> str:
        """The proxy URL the engine's HTTP tasks go through."""
        return f"http://{LOOPBACK}:{self.outbound_port(ENGINE)}"

    def set_policy(self, policy: MeshPolicy) -> None:
        """A new policy for every listener; connections stay open."""
        self.policy = policy
        for proxy, _ in self._outbound.values():
            proxy.set_policy(policy)
        for inbound, _, _ in self._inbound.values():
            inbound.set_policy(policy)
        if self._ingress is not None:
            self._ingress.set_policy(policy)

    def apply_manifest(self, manifest: Manifest) -> None:
        """``dirigent apply``: the manifest's mesh section (or the defaults) from now on."""
        policy = manifest.extensions.get("mesh")
        self.set_policy(policy if isinstance(policy, MeshPolicy) else MeshPolicy())

    def inject_fault(self, fault: FaultRequest) -> str | None:
        """Put a delay/abort fault on every route of one service, or clear it (all zero)."""
        if fault.service not in self.services:
            return f"no service {fault.service!r} in the mesh"
        delay = Delay(fault.delay, fault.delay_percent) if fault.delay_percent else None
        abort = Abort(fault.abort, fault.abort_percent) if fault.abort_percent else None
        planned = Fault(delay, abort) if delay or abort else None
        routes = tuple(
            dataclasses.replace(route, fault=planned)
            for route in self.policy.routes_for(fault.service)
        )
        self.set_policy(
            dataclasses.replace(self.policy, routes={**self.policy.routes, fault.service: routes})
        )
        return None

    def _issue(self, service: str) -> Identity:
        assert self._ca is not None
        return self._ca.issue(service, now=_utc(self._wall()))

    # ------------------------------------------------------------------ the runtime's contract

    def environment(self, service: str) -> Mapping[str, str]:
        return replica_environment(self.services, LOOPBACK, self.outbound_port(service))

    def readiness(self, service: str, slot: int, port: int | None, ready: bool) -> None:
        key = (service, slot)
        if not ready or port is None:
            self._ready.discard(key)
            self._publish(service)
            return
        self._ready.add(key)
        self._wanted[key] = port
        known = self._inbound.get(key)
        if known is not None and known[2] == port:
            self._publish(service)
            return
        task = asyncio.get_running_loop().create_task(self._open_inbound(service, slot, port))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _open_inbound(self, service: str, slot: int, port: int) -> None:
        old = self._inbound.pop((service, slot), None)
        if old is not None:
            old[0].close()
        inbound = Inbound(
            self.app, service, self.policy, (LOOPBACK, port), tls=self._tls[service],
            clock=self._clock, rng=self._rng, telemetry=self.telemetry, wall=self._wall,
        )  # fmt: skip
        listener = await inbound.listen(LOOPBACK, 0)
        if self._wanted.get((service, slot)) != port:
            # A later report for this slot (a restart on another port) won the race.
            inbound.close()
            return
        self._inbound[(service, slot)] = (inbound, listener.port, port)
        self._publish(service)

    def _publish(self, service: str) -> None:
        endpoints = [
            Endpoint(LOOPBACK, listener_port)
            for (name, slot), (_, listener_port, _) in sorted(self._inbound.items())
            if name == service and (name, slot) in self._ready
        ]
        self.endpoints.update(service, endpoints)

    def load(self, service: str) -> Mapping[str, float | None]:
        current = self._count(service)
        previous = self._counters.get(service)
        self._counters[service] = current
        result: Load = measure(previous, current)
        return result.as_metrics()

    def _count(self, service: str) -> Counters:
        requests = 0
        in_flight = 0
        buckets: list[int] | None = None
        for series in self.telemetry.metrics.served(service):
            requests += sum(series.statuses.values())
            in_flight += series.in_flight
            if buckets is None:
                buckets = list(series.buckets)
            else:
                buckets = [a + b for a, b in zip(buckets, series.buckets, strict=True)]
        return Counters(self._clock(), requests, tuple(buckets or ()), in_flight)
