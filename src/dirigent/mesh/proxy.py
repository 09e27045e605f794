"""The outbound listener: an HTTP/1.1 proxy that applies the mesh's policy to each request.

Per request, in this order: find the destination service (the Host), match a
route (404 if none), take a rate-limit token (429), choose a subset by the
route's split, admit through the breaker (503 when shed), then try endpoints:
readmit ejected ones whose time is up, pick one by the destination's load
balancer among those not ejected, send with the per-try timeout cut to the
route's deadline, fold the outcome into outlier detection, and let the retry
policy decide whether to try again. The chosen response is streamed back as
it arrives; a request body is held in memory (up to ``MAX_BODY``) because a
retry must send it again.

Faults are not injected here but by the callee's inbound listener
(:mod:`dirigent.mesh.inbound`), so a fault hits every caller of a service the
same way and a caller's retries see it as they would see the service fail.

With a :class:`~dirigent.mesh.tls.ServiceTls`, the proxy speaks mutual TLS to
every callee whose mode is not DISABLE, presenting the caller's identity, and
refuses a callee whose certificate does not carry the destination service's
SPIFFE ID (a connect failure, retried like any other). Each request is
reported to :class:`~dirigent.mesh.telemetry.Telemetry` with a span that
continues the caller's ``traceparent`` or starts a trace.

How it runs: each request is an :class:`~dirigent.mesh.outbound.Exchange`
driven by event-loop callbacks (the client's bytes parsed in
:mod:`dirigent.mesh.wire`, the upstream's in :mod:`dirigent.mesh.upstream`),
not a coroutine: on the common path a request costs no task, no future and no
await. What the policy needs per destination service is looked up once per
policy (:class:`Plan`), not per request.

Every decision is made by :mod:`dirigent.mesh.policy`; this module must
never decide anything itself. It reads the clock and draws randomness only
through the ``clock`` and ``rng`` it is given, so tests can steer both.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dirigent.mesh.config import DestinationPolicy, HttpRoute, MeshPolicy, MtlsMode
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.outbound import Exchange
from dirigent.mesh.policy import breaker, outlier, ratelimit, retry
from dirigent.mesh.policy.balance import (
    Algorithm,
    Endpoint,
    HashRing,
    least_request,
    round_robin,
)
from dirigent.mesh.policy.outcome import Outcome, is_5xx
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.telemetry import Series, Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Pool
from dirigent.mesh.wire import MAX_BODY, Request, ServerConnection

__all__ = ["MAX_BODY", "MAX_RINGS", "Proxy"]

#: hash rings kept per destination, one per distinct set of usable endpoints
MAX_RINGS = 16
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
#: (method, path) pairs whose route is remembered per plan
MAX_MATCHES = 4096
_UNKNOWN = object()


@dataclass(slots=True)
class Destination:
    """What the proxy keeps per destination service between requests."""

    cursor: int = 0
    active: dict[Endpoint, int] = field(default_factory=dict)
    outliers: outlier.OutlierState = field(default_factory=outlier.OutlierState)
    load: breaker.Load = field(default_factory=breaker.Load)
    #: rings by the exact endpoints they were built over: a change in the
    #: table, the subset or the ejected set gives another key, never a stale ring
    rings: dict[tuple[Endpoint, ...], HashRing] = field(default_factory=dict)
    #: requests queued for a connection at max_connections, woken as one frees up
    waiters: deque[Exchange] = field(default_factory=deque)

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if waiter.waiting:
                waiter.waiting = False
                # Woken from the loop, not from inside the release that freed
                # the connection, as a future's waiter would be.
                asyncio.get_running_loop().call_soon(waiter.woken, waiter.attempt)
                return

    def connection_closed(self) -> None:
        self.load = breaker.close_connection(self.load)
        self.wake_one()


class Plan:
    """What one policy says about one destination service, looked up once per policy."""

    __slots__ = (
        "_matched", "_retriable", "catch_all", "config", "counts_active", "expected",
        "needs_headers", "pool", "routes", "series", "service", "state",
    )  # fmt: skip

    def __init__(self, proxy: Proxy, service: str, policy: MeshPolicy) -> None:
        self.service = service
        self.routes = policy.routes_for(service)
        # The first route with no conditions matches every request: with it
        # first, matching needs no RequestHead at all.
        self.catch_all = next((i for i, r in enumerate(self.routes) if not r.matches), -1)
        self.needs_headers = any(m.headers for r in self.routes for m in r.matches)
        self.config: DestinationPolicy = policy.destination(service)
        #: only the least-request balancer reads requests in flight per endpoint
        self.counts_active = self.config.load_balancer.algorithm is Algorithm.LEAST_REQUEST
        self.state = proxy.destination_state(service)
        self.pool, self.expected = proxy.pool, None
        if proxy.tls_pool is not None and policy.mtls_mode(service) is not MtlsMode.DISABLE:
            self.pool, self.expected = proxy.tls_pool, proxy.peer_prefix + service
        self.series: dict[str, Series] = {}
        self._retriable: dict[tuple[int, Outcome], bool] = {}
        self._matched: dict[tuple[bytes, bytes], HttpRoute | None] = {}

    def retriable(self, route: HttpRoute, outcome: Outcome) -> bool:
        """:func:`retry.retriable` for the route, remembered per outcome for this policy.

        The answer depends only on the route's frozen retry policy and the
        outcome; asking once spares the enum hashing of every later request.
        """
        key = (id(route), outcome)
        found = self._retriable.get(key)
        if found is None:
            found = self._retriable[key] = retry.retriable(route.retries, outcome)
        return found

    def route(self, request: Request, target: bytes) -> HttpRoute | None:
        if self.catch_all == 0:
            return self.routes[0]
        if self.needs_headers:
            headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
            head = RequestHead(request.method.decode(), target.decode("latin-1"), headers)
            return first_match(self.routes, head)
        # Without header conditions the match depends on the method and the
        # path alone (the query is never matched): first_match's answer is
        # remembered per pair, in a bounded table, so a busy route is matched once.
        key = (request.method, target.split(b"?", 1)[0])
        matched = self._matched.get(key, _UNKNOWN)
        if matched is _UNKNOWN:
            head = RequestHead(key[0].decode(), key[1].decode("latin-1"), _NO_HEADERS)
            matched = first_match(self.routes, head)
            if len(self._matched) >= MAX_MATCHES:
                self._matched.clear()
            self._matched[key] = matched
        return matched  # type: ignore[return-value]  # _UNKNOWN was replaced above


class Proxy:
    def __init__(
        self,
        policy: MeshPolicy,
        endpoints: EndpointTable,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        source: str = "unknown",
        tls: ServiceTls | None = None,
        telemetry: Telemetry | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.endpoints = endpoints
        #: the calling service whose outbound listener this is: its metric label
        self.source = source
        self.tls = tls
        self.telemetry = telemetry or Telemetry()
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self.pool = Pool()
        self.tls_pool = Pool(tls.client) if tls is not None else None
        # spiffe://<app>/service/ : a callee's expected ID is this plus its name
        self.peer_prefix = tls.identity.spiffe_id.rsplit("/", 1)[0] + "/" if tls else ""
        self._destinations: dict[str, Destination] = {}
        self._buckets: dict[tuple[str, str], ratelimit.BucketState] = {}
        self._plans: dict[str, Plan] = {}

    def set_policy(self, policy: MeshPolicy) -> None:
        """Swap the policy; requests in flight finish under the one they started with."""
        self.policy = policy
        self._plans = {}

    async def listen(
        self, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
    ) -> asyncio.Server:
        """Serve on ``host:port``; ``reuse_port`` lets one worker per core share the port."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: ServerConnection(self._dispatch), host, port, backlog=1024,
            reuse_port=reuse_port or None,
        )  # fmt: skip

    def close(self) -> None:
        self.pool.close()
        if self.tls_pool is not None:
            self.tls_pool.close()

    def _dispatch(self, client: ServerConnection, request: Request) -> None:
        service, target = _destination_of(request)
        self.handle(request, client, service, target)

    def handle(
        self, request: Request, client: ServerConnection, service: str, target: bytes
    ) -> None:
        """Route, balance and forward one request to ``service``, answering on ``client``.

        Returns at once; the exchange goes on in callbacks and calls
        ``client.finish`` when its response is written.
        """
        plan = self._plans.get(service)
        if plan is None:
            plan = self._plans[service] = Plan(self, service, self.policy)
        Exchange(self, plan, request, client, target).start()

    # -- what an exchange asks of the proxy's shared state -------------------

    def destination_state(self, service: str) -> Destination:
        state = self._destinations.get(service)
        if state is None:
            state = self._destinations[service] = Destination()
        return state

    def series(self, plan: Plan, route: str) -> Series:
        found = plan.series.get(route)
        if found is None:
            found = plan.series[route] = self.telemetry.metrics.series(
                "source", self.source, plan.service, route
            )
        return found

    def take_token(self, service: str, route: HttpRoute) -> bool:
        assert route.rate_limit is not None
        key = (service, route.name)
        now = self.clock()
        current = self._buckets.get(key) or ratelimit.full(route.rate_limit, now)
        ok, self._buckets[key] = ratelimit.take(route.rate_limit, current, now)
        return ok

    def endpoints_of(
        self, service: str, subset: str | None, config: DestinationPolicy
    ) -> tuple[Endpoint, ...]:
        every = self.endpoints.get(service)
        if subset is None:
            return every
        labels = config.subsets.get(subset, {})
        return tuple(e for e in every if e.has_labels(labels))

    def pick(
        self,
        config: DestinationPolicy,
        state: Destination,
        candidates: tuple[Endpoint, ...],
        request: Request,
    ) -> Endpoint:
        usable: tuple[Endpoint, ...] | list[Endpoint] = candidates
        # With no endpoint on record (no 5xx seen since the last success) there
        # is nothing to readmit or avoid: readmit and ejected() would only copy
        # an empty state. Skipping them is the same decision, not a new one.
        if state.outliers.hosts:
            if config.outlier_detection is not None:
                state.outliers, _ = outlier.readmit(
                    config.outlier_detection, state.outliers, self.clock()
                )
            ejected = state.outliers.ejected()
            if ejected:
                usable = [e for e in candidates if e.address not in ejected] or candidates
        balancer = config.load_balancer
        if balancer.algorithm is Algorithm.LEAST_REQUEST:
            return least_request(usable, state.active, self.rng.random)
        if balancer.algorithm is Algorithm.RING_HASH and balancer.hash_header is not None:
            key = request.header(balancer.hash_header.lower().encode())
            if key is not None:
                members = tuple(usable)
                ring = state.rings.get(members)
                if ring is None:
                    if len(state.rings) >= MAX_RINGS:
                        state.rings.clear()  # sets seen long ago; rebuilding one is cheap
                    ring = state.rings[members] = HashRing.build(members)
                return ring.pick(key.decode("latin-1"))
        endpoint, state.cursor = round_robin(usable, state.cursor)
        return endpoint

    def observe(
        self,
        config: DestinationPolicy,
        state: Destination,
        endpoint: Endpoint,
        outcome: Outcome,
        pool_size: int,
    ) -> None:
        detection = config.outlier_detection
        if detection is None:
            return
        # A success at an endpoint with no record changes nothing (observe
        # would return the state as it is): the common case skips the call.
        if not state.outliers.hosts and not is_5xx(outcome):
            return
        state.outliers, _ = outlier.observe(
            detection, state.outliers, endpoint.address, outcome,
            now=self.clock(), pool_size=pool_size,
        )  # fmt: skip


def _destination_of(request: Request) -> tuple[str, bytes]:
    """The service named by the request (absolute-form target or Host) and the origin-form path."""
    target = request.target
    host = request.host or b""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        authority, _, path = rest.partition(b"/")
        host, target = authority, b"/" + path
    service = host.split(b":", 1)[0].decode("latin-1").lower()
    return service, target or b"/"
