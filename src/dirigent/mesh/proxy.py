"""The outbound listener: an HTTP/1.1 proxy that applies the mesh's policy to each request.

Per request, in this order: find the destination service (the Host), match a
route (404 if none), take a rate-limit token (429), choose a
subset by the route's split, admit through the breaker (503 when shed), then
try endpoints: readmit ejected ones whose time is up, pick one by the
destination's load balancer among those not ejected, send with the per-try
timeout cut to the route's deadline, fold the outcome into outlier detection,
and let the retry policy decide whether to try again. The chosen response is
streamed back as it arrives; a request body is held in memory (up to
``max_body``) because a retry must send it again.

Faults are not injected here but by the callee's inbound listener
(:mod:`dirigent.mesh.inbound`), so a fault hits every caller of a service the
same way and a caller's retries see it as they would see the service fail.

With a :class:`~dirigent.mesh.tls.ServiceTls`, the proxy speaks mutual TLS to
every callee whose mode is not DISABLE, presenting the caller's identity, and
refuses a callee whose certificate does not carry the destination service's
SPIFFE ID (a connect failure, retried like any other). Each request is
reported to :class:`~dirigent.mesh.telemetry.Telemetry` with a span that
continues the caller's ``traceparent`` or starts a trace.

Every decision is made by :mod:`dirigent.mesh.policy`; this module must
never decide anything itself. It reads the clock and draws randomness only
through the ``clock`` and ``rng`` it is given, so tests can steer both.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dirigent.mesh import http1
from dirigent.mesh.ca import peer_identity
from dirigent.mesh.config import DestinationPolicy, HttpRoute, MeshPolicy, MtlsMode
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy import breaker, outlier, ratelimit, retry, trace
from dirigent.mesh.policy.balance import (
    Algorithm,
    Endpoint,
    HashRing,
    least_request,
    round_robin,
)
from dirigent.mesh.policy.headers import rewrite
from dirigent.mesh.policy.outcome import Failure, Outcome, status_for
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.relay import relay, reply
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Connection, Pool

#: the largest request body held for retries
MAX_BODY = 8 * 2**20
#: hash rings kept per destination, one per distinct set of usable endpoints
MAX_RINGS = 16
_TRACEPARENT = b"traceparent"


@dataclass(slots=True)
class _Destination:
    """What the proxy keeps per destination service between requests."""

    cursor: int = 0
    active: dict[Endpoint, int] = field(default_factory=dict)
    outliers: outlier.OutlierState = field(default_factory=outlier.OutlierState)
    load: breaker.Load = field(default_factory=breaker.Load)
    #: rings by the exact endpoints they were built over: a change in the
    #: table, the subset or the ejected set gives another key, never a stale ring
    rings: dict[tuple[Endpoint, ...], HashRing] = field(default_factory=dict)
    #: requests queued for a connection at max_connections, woken as one frees up
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


@dataclass(slots=True)
class _Attempt:
    outcome: Outcome
    connection: Connection | None = None
    response: http1.Message | None = None
    #: shed at max_connections with max_pending full: answered 503 at once,
    #: neither retried nor held against the endpoint
    overflow: bool = False


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
        self._clock = clock
        self._wall = wall
        self._rng = rng
        self._pool = Pool()
        self._tls_pool = Pool(tls.client) if tls is not None else None
        # spiffe://<app>/service/ : a callee's expected ID is this plus its name
        self._peer_prefix = tls.identity.spiffe_id.rsplit("/", 1)[0] + "/" if tls else ""
        self._destinations: dict[str, _Destination] = {}
        self._buckets: dict[tuple[str, str], ratelimit.BucketState] = {}

    def set_policy(self, policy: MeshPolicy) -> None:
        """Swap the policy; requests in flight finish under the one they started with."""
        self.policy = policy

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host, port)

    def close(self) -> None:
        self._pool.close()
        if self._tls_pool is not None:
            self._tls_pool.close()

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        try:
            while (request := await reader.head()) is not None:
                body = await reader.whole_body(request, MAX_BODY)
                service, target = _destination_of(request)
                await self.handle(request, body, writer, service, target)
                if not request.keep_alive:
                    break
        except http1.ProtocolError:
            with contextlib.suppress(ConnectionError):
                await reply(writer, 400, b"bad request\n", keep_alive=False)
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            writer.close()

    async def handle(
        self,
        request: http1.Message,
        body: bytes,
        writer: asyncio.StreamWriter,
        service: str,
        target: bytes,
    ) -> int:
        """Route, balance and forward one request to ``service``; the status answered."""
        started, start_wall = self._clock(), self._wall()
        policy = self.policy
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in
                   request.headers}  # fmt: skip
        head = RequestHead(request.method.decode(), target.decode("latin-1"), headers)
        route = first_match(policy.routes_for(service), head)
        route_name = route.name if route is not None else "none"
        series = self.telemetry.metrics.series("source", self.source, service, route_name)
        series.start()
        span = trace.hop(request.header(_TRACEPARENT), self._rng.getrandbits)
        status = 500
        try:
            status = await self._handle(
                request=request,
                body=body,
                writer=writer,
                service=service,
                target=target,
                route=route,
                span=span,
            )
            return status
        finally:
            self.telemetry.record(
                series=series, kind="client", source=self.source, destination=service,
                route=route_name, method=request.method, path=target, status=status,
                start=start_wall, duration=self._clock() - started, trace_id=span.trace_id,
                span_id=span.span_id, parent_id=span.parent_id,
            )  # fmt: skip

    async def _handle(
        self,
        *,
        request: http1.Message,
        body: bytes,
        writer: asyncio.StreamWriter,
        service: str,
        target: bytes,
        route: HttpRoute | None,
        span: trace.Hop,
    ) -> int:
        keep = request.keep_alive
        if route is None:
            await reply(writer, 404, b"no route\n", keep_alive=keep)
            return 404
        if route.rate_limit is not None and not self._take_token(service, route):
            await reply(writer, 429, b"local_rate_limited\n", keep_alive=keep)
            return 429
        chosen = route.split.choose(self._rng.random())
        config = self.policy.destination(service)
        candidates = self._endpoints_of(service, chosen.subset, config)
        if not candidates:
            await reply(writer, 503, b"no healthy upstream\n", keep_alive=keep)
            return 503
        state = self._destinations.setdefault(service, _Destination())
        admitted = breaker.start_request(config.connection_pool, state.load)
        if isinstance(admitted, breaker.Overflow):
            extra = [(b"x-envoy-overloaded", b"true")]
            await reply(writer, 503, b"overflow\n", keep_alive=keep, headers=extra)
            return 503
        state.load = admitted
        try:
            return await self._forward(
                request=request, body=body, target=target, route=route, config=config,
                state=state, candidates=candidates, writer=writer, service=service, span=span,
            )  # fmt: skip
        finally:
            state.load = breaker.finish_request(state.load)

    async def _forward(
        self,
        *,
        request: http1.Message,
        body: bytes,
        target: bytes,
        route: HttpRoute,
        config: DestinationPolicy,
        state: _Destination,
        candidates: tuple[Endpoint, ...],
        writer: asyncio.StreamWriter,
        service: str,
        span: trace.Hop,
    ) -> int:
        policy = route.retries
        deadline = None if route.timeout is None else self._clock() + route.timeout
        forwarded = [h for h in http1.forwardable(request.headers) if h[0] != _TRACEPARENT]
        if route.headers.request.empty:
            out_headers = [h for h in forwarded if h[0] != b"host"]
        else:
            out_headers = _encode(rewrite(route.headers.request, _decode(forwarded)))
        out_headers.append((_TRACEPARENT, span.traceparent))
        pool, expected = self._pool, None
        if self._tls_pool is not None and self.policy.mtls_mode(service) is not MtlsMode.DISABLE:
            pool, expected = self._tls_pool, self._peer_prefix + service
        retries = 0
        # A retry holds its slot of max_retries from the decision until its
        # attempt ends, as Envoy counts retries in flight.
        holding_retry = False
        while True:
            endpoint = self._pick(config, state, candidates, request)
            timeout = retry.try_timeout(policy, self._clock(), deadline)
            state.active[endpoint] = state.active.get(endpoint, 0) + 1
            try:
                attempt = await self._attempt(
                    endpoint, method=request.method, target=target, headers=out_headers,
                    body=body, timeout=timeout, pool=pool, expected=expected,
                    limits=config.connection_pool, state=state,
                )  # fmt: skip
            finally:
                state.active[endpoint] -= 1
                if holding_retry:
                    state.load = breaker.finish_retry(state.load)
                    holding_retry = False
            if attempt.overflow:
                extra = [(b"x-envoy-overloaded", b"true")]
                await reply(
                    writer, 503, b"overflow\n", keep_alive=request.keep_alive, headers=extra
                )
                return 503
            self._observe(config, state, endpoint, attempt.outcome, len(candidates))
            budget_ok = (
                retry.within_budget(config.retry_budget, state.load.requests, state.load.retries)
                and state.load.retries < config.connection_pool.max_retries
            )
            decision = retry.decide(
                policy, attempt.outcome, retries, now=self._clock(), deadline=deadline,
                budget_ok=budget_ok, draw=self._rng.random,
            )  # fmt: skip
            if isinstance(decision, retry.Retry) and attempt.connection is not None:
                attempt.connection.close()  # its body is not wanted; draining costs more
            if not isinstance(decision, retry.Retry):
                return await self._respond(request, route, attempt, writer)
            retries = decision.retry
            started = breaker.start_retry(config.connection_pool, state.load)
            if isinstance(started, breaker.Load):
                state.load = started
                holding_retry = True
            await asyncio.sleep(decision.delay)

    async def _attempt(
        self,
        endpoint: Endpoint,
        *,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float | None,
        pool: Pool,
        expected: str | None,
        limits: breaker.ConnectionPool,
        state: _Destination,
    ) -> _Attempt:
        host_header = [(b"host", endpoint.address.encode())]
        payload = http1.request_head(method, target, host_header + headers, len(body)) + body
        connection: Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                for fresh in (False, True):
                    try:
                        connection = await self._acquire(pool, endpoint, limits, state)
                    except OSError:
                        return _Attempt(Failure.CONNECT_FAILURE)
                    if connection is None:
                        return _Attempt(Failure.CONNECT_FAILURE, overflow=True)
                    if expected is not None and not connection.reused:
                        ssl_object = connection.writer.get_extra_info("ssl_object")
                        if peer_identity(ssl_object) != expected:
                            # A certificate from the mesh CA, but not the callee's:
                            # talking to it would hand one service's traffic to another.
                            connection.close()
                            return _Attempt(Failure.CONNECT_FAILURE)
                    try:
                        connection.writer.write(payload)
                        await connection.writer.drain()
                        response = await connection.reader.head()
                    except (OSError, http1.ProtocolError):
                        response = None
                    if response is not None:
                        return _Attempt(response.status, connection, response)
                    connection.close()
                    # An idle pooled connection the upstream closed meanwhile is
                    # not the endpoint failing: try once more on a new one.
                    if fresh or not connection.reused:
                        break
                return _Attempt(Failure.RESET)
        except TimeoutError:
            if connection is not None:
                connection.close()  # a response may still arrive on it; nobody would read it
            return _Attempt(Failure.TIMEOUT)

    async def _acquire(
        self, pool: Pool, endpoint: Endpoint, limits: breaker.ConnectionPool, state: _Destination
    ) -> Connection | None:
        """A connection to ``endpoint`` within the destination's connection limit.

        An idle one first; else a new one if ``max_connections`` allows; else
        wait in the queue for one to free up (or for an idle connection to
        another endpoint to be closed to make room); None when the queue is
        full too, which sheds the request.
        """
        while True:
            connection = pool.take_idle(endpoint.host, endpoint.port)
            if connection is not None:
                return connection
            opened = breaker.open_connection(limits, state.load)
            if isinstance(opened, breaker.Load):
                state.load = opened
                try:
                    connection = await pool.connect(endpoint.host, endpoint.port)
                except BaseException:
                    state.load = breaker.close_connection(state.load)
                    state.wake_one()
                    raise
                connection.owner = state
                connection.on_close = lambda: self._connection_closed(state)
                connection.on_idle = state.wake_one
                return connection
            if pool.evict_idle(state):
                continue  # an idle connection elsewhere made room for this one
            queued = breaker.queue(limits, state.load)
            if isinstance(queued, breaker.Overflow):
                return None
            state.load = queued
            waiter = asyncio.get_running_loop().create_future()
            state.waiters.append(waiter)
            try:
                await waiter
            finally:
                state.load = breaker.dequeue(state.load)

    @staticmethod
    def _connection_closed(state: _Destination) -> None:
        state.load = breaker.close_connection(state.load)
        state.wake_one()

    async def _respond(
        self,
        request: http1.Message,
        route: HttpRoute,
        attempt: _Attempt,
        writer: asyncio.StreamWriter,
    ) -> int:
        keep = request.keep_alive
        response, connection = attempt.response, attempt.connection
        if response is None or connection is None:
            assert isinstance(attempt.outcome, Failure)
            status = status_for(attempt.outcome)
            text = b"upstream request timeout\n" if status == 504 else b"upstream connect error\n"
            await reply(writer, status, text, keep_alive=keep)
            return status
        forwarded = http1.forwardable(response.headers)
        if not route.headers.response.empty:
            forwarded = _encode(rewrite(route.headers.response, _decode(forwarded)))
        pool = self._tls_pool if connection.writer.get_extra_info("ssl_object") else self._pool
        assert pool is not None
        await relay(
            pool, connection, response, forwarded, writer,
            head_only=request.method == b"HEAD", keep_alive=keep,
        )  # fmt: skip
        return response.status

    def _endpoints_of(
        self, service: str, subset: str | None, config: DestinationPolicy
    ) -> tuple[Endpoint, ...]:
        every = self.endpoints.get(service)
        if subset is None:
            return every
        labels = config.subsets.get(subset, {})
        return tuple(e for e in every if e.has_labels(labels))

    def _pick(
        self,
        config: DestinationPolicy,
        state: _Destination,
        candidates: tuple[Endpoint, ...],
        request: http1.Message,
    ) -> Endpoint:
        if config.outlier_detection is not None:
            state.outliers, _ = outlier.readmit(
                config.outlier_detection, state.outliers, self._clock()
            )
        ejected = state.outliers.ejected()
        usable = [e for e in candidates if e.address not in ejected] or list(candidates)
        balancer = config.load_balancer
        if balancer.algorithm is Algorithm.LEAST_REQUEST:
            return least_request(usable, state.active, self._rng.random)
        if balancer.algorithm is Algorithm.RING_HASH and balancer.hash_header is not None:
            key = request.header(balancer.hash_header.encode())
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

    def _observe(
        self,
        config: DestinationPolicy,
        state: _Destination,
        endpoint: Endpoint,
        outcome: Outcome,
        pool_size: int,
    ) -> None:
        if config.outlier_detection is None:
            return
        state.outliers, _ = outlier.observe(
            config.outlier_detection, state.outliers, endpoint.address, outcome,
            now=self._clock(), pool_size=pool_size,
        )  # fmt: skip

    def _take_token(self, service: str, route: HttpRoute) -> bool:
        assert route.rate_limit is not None
        key = (service, route.name)
        now = self._clock()
        current = self._buckets.get(key) or ratelimit.full(route.rate_limit, now)
        ok, self._buckets[key] = ratelimit.take(route.rate_limit, current, now)
        return ok


def _destination_of(request: http1.Message) -> tuple[str, bytes]:
    """The service named by the request (absolute-form target or Host) and the origin-form path."""
    target = request.target
    host = request.header(b"host") or b""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        authority, _, path = rest.partition(b"/")
        host, target = authority, b"/" + path
    service = host.split(b":", 1)[0].decode("latin-1").lower()
    return service, target or b"/"


def _decode(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers if n != b"host"]


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
