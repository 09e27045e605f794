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
policy (:class:`Plan`), and what it says per route is worked out once
(:class:`RoutePlan`): a route with no split, fault, rewrite, rate limit,
timeout or mirror costs a few attribute tests. Breaker and outlier state are
counters updated in place (:mod:`dirigent.mesh.counters`), checked against
the pure cores by the unit tests.

A route's ``mirror`` sends a copy of its requests to another destination
(:class:`~dirigent.mesh.outbound.Shadow`): admitted through that
destination's breaker, never queued, its answer discarded, so it can neither
delay nor fail the primary request.

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
from dirigent.mesh.counters import BreakerCounters, OutlierTracker
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.heads import Request
from dirigent.mesh.outbound import Deadlines, Exchange, Shadow
from dirigent.mesh.policy import ratelimit, retry
from dirigent.mesh.policy.balance import (
    Algorithm,
    Endpoint,
    HashRing,
    least_request,
)
from dirigent.mesh.policy.headers import ByteOps, compile_ops
from dirigent.mesh.policy.mirror import SHADOW_SUFFIX, Mirror, mirrored
from dirigent.mesh.policy.outcome import Failure, Outcome
from dirigent.mesh.policy.routing import RequestHead, RouteMatch, first_match
from dirigent.mesh.telemetry import Series, Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Pool
from dirigent.mesh.wire import MAX_BODY, ServerConnection

__all__ = ["MAX_BODY", "MAX_RINGS", "Proxy"]

#: hash rings kept per destination, one per distinct set of usable endpoints
MAX_RINGS = 16
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
#: (method, path) pairs whose route is remembered per plan
MAX_MATCHES = 4096
#: mirrored requests in flight per proxy; past it, copies are dropped
MAX_SHADOWS = 256
#: how long a mirrored request may take when its route sets no timeout
SHADOW_TIMEOUT = 10.0
#: every status httptools can report (three digits)
_STATUSES = range(1000)
_UNKNOWN = object()


@dataclass(slots=True)
class Destination:
    """What the proxy keeps per destination service between requests."""

    cursor: int = 0
    active: dict[Endpoint, int] = field(default_factory=dict)
    outliers: OutlierTracker = field(default_factory=OutlierTracker)
    counters: BreakerCounters = field(default_factory=BreakerCounters)
    #: rings by the exact endpoints they were built over: a change in the
    #: table, the subset or the ejected set gives another key, never a stale ring
    rings: dict[tuple[Endpoint, ...], HashRing] = field(default_factory=dict)
    #: requests queued for a connection at max_connections, woken as one frees up
    waiters: deque[Exchange] = field(default_factory=deque)
    #: each endpoint's ``host:port`` as sent in the Host line, by address
    hosts: dict[tuple[str, int], bytes] = field(default_factory=dict)

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
        self.counters.close_connection()
        self.wake_one()

    def host_line(self, address: tuple[str, int]) -> bytes:
        found = self.hosts.get(address)
        if found is None:
            if len(self.hosts) >= MAX_MATCHES:
                self.hosts.clear()  # endpoints long gone; rebuilding one is cheap
            found = self.hosts[address] = b"%s:%d" % (address[0].encode(), address[1])
        return found


class RoutePlan:
    """What one route asks of each request, worked out once per policy.

    Every field is a plain value the exchange tests with ``is None`` or a
    set membership, in place of a policy call per request:

    - ``subset``/``split``: a route with one destination needs no draw
      (``split.choose`` could only return it);
    - ``retriable``: every outcome :func:`retry.retriable` says yes to, as
      one frozenset (empty with no retries left to give: ``retry.decide``
      could only give up); statuses are ints, failures ``Failure`` members;
    - ``timed``: only a route with a timeout or a per-try timeout reads the
      clock for ``retry.try_timeout`` and sets a timer; first attempts share
      one (``deadlines``), as their timeout is always ``first_timeout``;
    - ``request_ops``/``response_ops``: header rewrites compiled to bytes.
    """

    __slots__ = (
        "deadlines", "first_timeout", "matches", "mirror", "name", "rate_limit", "request_ops",
        "response_ops", "retriable", "retries", "route", "series", "split", "subset", "timed",
        "timeout",
    )  # fmt: skip

    def __init__(self, route: HttpRoute) -> None:
        self.route = route
        self.name = route.name
        self.matches: tuple[RouteMatch, ...] = route.matches
        self.rate_limit = route.rate_limit
        destinations = route.split.destinations
        self.split = route.split if len(destinations) > 1 else None
        self.subset = destinations[0].subset
        self.timeout = route.timeout
        self.retries = policy = route.retries
        self.timed = route.timeout is not None or policy.per_try_timeout is not None
        #: what retry.try_timeout gives a first attempt (it starts at the request's start)
        self.first_timeout = retry.try_timeout(policy, 0.0, route.timeout) or 0.0
        #: the queue behind which first attempts wait for their timeout
        self.deadlines = Deadlines() if self.timed else None
        outcomes: list[Outcome] = [*_STATUSES, *Failure]
        self.retriable: frozenset[Outcome] = (
            frozenset(o for o in outcomes if retry.retriable(policy, o))
            if policy.attempts > 0
            else frozenset()
        )
        self.request_ops: ByteOps | None = compile_ops(route.headers.request)
        self.response_ops: ByteOps | None = compile_ops(route.headers.response)
        self.mirror: Mirror | None = route.mirror
        #: the route's metric series, found on its first request
        self.series: Series | None = None


class Plan:
    """What one policy says about one destination service, looked up once per policy."""

    __slots__ = (
        "_matched", "catch_all", "config", "counts_active", "expected", "needs_headers",
        "none_series", "pool", "round_robin", "routes", "service", "shadow_host", "state",
    )  # fmt: skip

    def __init__(self, proxy: Proxy, service: str, policy: MeshPolicy) -> None:
        self.service = service
        self.routes = tuple(RoutePlan(route) for route in policy.routes_for(service))
        # The first route with no conditions matches every request: with it
        # first, matching needs no RequestHead at all.
        self.catch_all = next((i for i, r in enumerate(self.routes) if not r.matches), -1)
        self.needs_headers = any(m.headers for r in self.routes for m in r.matches)
        self.config: DestinationPolicy = policy.destination(service)
        algorithm = self.config.load_balancer.algorithm
        #: only the least-request balancer reads requests in flight per endpoint
        self.counts_active = algorithm is Algorithm.LEAST_REQUEST
        self.round_robin = algorithm is Algorithm.ROUND_ROBIN or (
            algorithm is Algorithm.RING_HASH and self.config.load_balancer.hash_header is None
        )
        self.state = proxy.destination_state(service)
        self.pool, self.expected = proxy.pool, None
        if proxy.tls_pool is not None and policy.mtls_mode(service) is not MtlsMode.DISABLE:
            self.pool, self.expected = proxy.tls_pool, proxy.peer_prefix + service
        self.none_series: Series | None = None
        #: the Host of a copy of this service's requests sent to a mirror
        self.shadow_host = (service + SHADOW_SUFFIX).encode("latin-1")
        self._matched: dict[tuple[bytes, bytes], RoutePlan | None] = {}

    def route(self, request: Request, target: bytes) -> RoutePlan | None:
        if self.catch_all == 0:
            return self.routes[0]
        if self.needs_headers:
            headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
            head = RequestHead(request.method.decode(), target.decode("latin-1"), headers)
            return first_match(self.routes, head)
        # Without header conditions the match depends on the method and the
        # path alone (the query is never matched): first_match's answer is
        # remembered per pair, in a bounded table, so a busy route is matched once.
        key = (request.method, target.split(b"?", 1)[0] if b"?" in target else target)
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
        #: rng.getrandbits, bound once: every request draws its span id through it
        self.bits = rng.getrandbits
        self.pool = Pool()
        self.tls_pool = Pool(tls.client) if tls is not None else None
        # spiffe://<app>/service/ : a callee's expected ID is this plus its name
        self.peer_prefix = tls.identity.spiffe_id.rsplit("/", 1)[0] + "/" if tls else ""
        self._destinations: dict[str, Destination] = {}
        self._buckets: dict[tuple[str, str], ratelimit.BucketState] = {}
        self._plans: dict[str, Plan] = {}
        #: the service each Host value names (a Host is decoded and lowercased once)
        self._services: dict[bytes, str] = {}
        #: mirrored requests in flight
        self.shadows = 0

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
        target = request.target
        if target[:1] == b"/":
            # Origin form, the common case: the Host names the service.
            host = request.host or b""
            service = self._services.get(host)
            if service is None:
                if len(self._services) >= MAX_MATCHES:
                    self._services.clear()
                service = self._services[host] = _service_of(host)
        else:
            service, target = _destination_of(request)
        plan = self._plans.get(service)
        if plan is None:
            plan = self._plans[service] = Plan(self, service, self.policy)
        Exchange(self, plan, request, client, target).start()

    def handle(
        self, request: Request, client: ServerConnection, service: str, target: bytes
    ) -> None:
        """Route, balance and forward one request to ``service``, answering on ``client``.

        Returns at once; the exchange goes on in callbacks and calls
        ``client.finish`` when its response is written.
        """
        Exchange(self, self.plan_for(service), request, client, target).start()

    # -- what an exchange asks of the proxy's shared state -------------------

    def plan_for(self, service: str) -> Plan:
        plan = self._plans.get(service)
        if plan is None:
            plan = self._plans[service] = Plan(self, service, self.policy)
        return plan

    def destination_state(self, service: str) -> Destination:
        state = self._destinations.get(service)
        if state is None:
            state = self._destinations[service] = Destination()
        return state

    def series(self, plan: Plan, route: RoutePlan | None) -> Series:
        """The metric series of ``route`` (None: no route matched), made on first use."""
        found = self.telemetry.metrics.series(
            "source", self.source, plan.service, route.name if route is not None else "none"
        )
        if route is None:
            plan.none_series = found
        else:
            route.series = found
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
        self, plan: Plan, state: Destination, candidates: tuple[Endpoint, ...], request: Request
    ) -> Endpoint:
        usable: tuple[Endpoint, ...] | list[Endpoint] = candidates
        tracker = state.outliers
        # With no endpoint on record (no 5xx seen yet) there is nothing to
        # readmit or avoid; the tracker itself skips readmit() until one is due.
        if tracker.state.hosts:
            config = plan.config
            if config.outlier_detection is not None:
                tracker.readmit(config.outlier_detection, self.clock())
            ejected = tracker.ejected
            if ejected:
                usable = [e for e in candidates if e.address not in ejected] or candidates
        if plan.round_robin:
            # balance.round_robin inlined (same index, same next cursor): the
            # commonest balancer costs no call and no tuple per request.
            index = state.cursor % len(usable)
            state.cursor = (index + 1) % len(usable)
            return usable[index]
        balancer = plan.config.load_balancer
        if balancer.algorithm is Algorithm.LEAST_REQUEST:
            return least_request(usable, state.active, self.rng.random)
        assert balancer.hash_header is not None  # RING_HASH without a header is round robin
        key = request.header(balancer.hash_header.lower().encode())
        if key is None:
            index = state.cursor % len(usable)
            state.cursor = (index + 1) % len(usable)
            return usable[index]
        members = tuple(usable)
        ring = state.rings.get(members)
        if ring is None:
            if len(state.rings) >= MAX_RINGS:
                state.rings.clear()  # sets seen long ago; rebuilding one is cheap
            ring = state.rings[members] = HashRing.build(members)
        return ring.pick(key.decode("latin-1"))

    def observe(
        self, plan: Plan, endpoint: Endpoint, outcome: Outcome, *, failed: bool, pool_size: int
    ) -> None:
        """Fold an attempt's outcome into outlier detection (``failed``: it was a 5xx)."""
        detection = plan.config.outlier_detection
        if detection is None:
            return
        tracker = plan.state.outliers
        # A success with no run of failures anywhere changes nothing: one test.
        if not failed and not tracker.running:
            return
        tracker.observe(
            detection, endpoint.address, outcome, success=not failed, now=self.clock(),
            pool_size=pool_size,
        )  # fmt: skip

    def shadow(
        self,
        mirror: Mirror,
        plan: Plan,
        *,
        request: Request,
        target: bytes,
        head: bytes,
        timeout: float | None,
    ) -> None:
        """Send a copy of a request to ``mirror``'s destination, if it is its turn and fits."""
        if not mirror.always and not mirrored(mirror, self.rng.random()):
            return
        if self.shadows >= MAX_SHADOWS:
            return  # mirrors that fall behind lose copies, never hold memory
        mirror_plan = self.plan_for(mirror.service)
        candidates = self.endpoints_of(mirror.service, mirror.subset, mirror_plan.config)
        if not candidates:
            return
        if not mirror_plan.state.counters.start_request(mirror_plan.config.connection_pool):
            return
        endpoint = self.pick(mirror_plan, mirror_plan.state, candidates, request)
        payload = b"".join((
            request.method, b" ", target, b" HTTP/1.1\r\nhost: ", plan.shadow_host, b"\r\n", head,
        ))  # fmt: skip
        address = (endpoint.host, endpoint.port)
        Shadow(self, mirror_plan, address, payload, timeout or SHADOW_TIMEOUT).start()


def _service_of(host: bytes) -> str:
    return host.split(b":", 1)[0].decode("latin-1").lower()


def _destination_of(request: Request) -> tuple[str, bytes]:
    """The service named by the request (absolute-form target or Host) and the origin-form path."""
    target = request.target
    host = request.host or b""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        authority, _, path = rest.partition(b"/")
        host, target = authority, b"/" + path
    return _service_of(host), target or b"/"
