"""The outbound listener: an HTTP/1.1 proxy that applies the mesh's policy to each request.

Per request, in this order: find the destination service (the Host), match a
route (404 if none), inject faults, take a rate-limit token (429), choose a
subset by the route's split, admit through the breaker (503 when shed), then
try endpoints: readmit ejected ones whose time is up, pick one by the
destination's load balancer among those not ejected, send with the per-try
timeout cut to the route's deadline, fold the outcome into outlier detection,
and let the retry policy decide whether to try again. The chosen response is
streamed back as it arrives; a request body is held in memory (up to
``max_body``) because a retry must send it again.

Every decision is made by :mod:`dirigent.mesh.policy`; this module must
never decide anything itself. It reads the clock and draws randomness only
through the ``clock`` and ``rng`` it is given, so tests can steer both.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from dirigent.mesh import http1
from dirigent.mesh.config import DestinationPolicy, HttpRoute, MeshPolicy
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.policy import breaker, fault, outlier, ratelimit, retry
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
from dirigent.mesh.upstream import Connection, Pool

#: the largest request body held for retries
MAX_BODY = 8 * 2**20


@dataclass(slots=True)
class _Destination:
    """What the proxy keeps per destination service between requests."""

    cursor: int = 0
    active: dict[Endpoint, int] = field(default_factory=dict)
    outliers: outlier.OutlierState = field(default_factory=outlier.OutlierState)
    load: breaker.Load = field(default_factory=breaker.Load)
    ring: HashRing | None = None
    ring_version: int = -1


@dataclass(slots=True)
class _Attempt:
    outcome: Outcome
    connection: Connection | None = None
    response: http1.Message | None = None


class Proxy:
    def __init__(
        self,
        policy: MeshPolicy,
        endpoints: EndpointTable,
        *,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.policy = policy
        self.endpoints = endpoints
        self._clock = clock
        self._rng = rng
        self._pool = Pool()
        self._destinations: dict[str, _Destination] = {}
        self._buckets: dict[tuple[str, str], ratelimit.BucketState] = {}

    def set_policy(self, policy: MeshPolicy) -> None:
        """Swap the policy; requests in flight finish under the one they started with."""
        self.policy = policy

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host, port)

    def close(self) -> None:
        self._pool.close()

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        try:
            while (request := await reader.head()) is not None:
                body = await reader.whole_body(request, MAX_BODY)
                await self._handle(request, body, writer)
                if not request.keep_alive:
                    break
        except http1.ProtocolError:
            with contextlib.suppress(ConnectionError):
                await _reply(writer, 400, b"bad request\n", keep_alive=False)
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            writer.close()

    async def _handle(
        self, request: http1.Message, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        keep = request.keep_alive
        service, target = _destination_of(request)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in
                   request.headers}  # fmt: skip
        head = RequestHead(request.method.decode(), target.decode("latin-1"), headers)
        route = first_match(self.policy.routes_for(service), head)
        if route is None:
            await _reply(writer, 404, b"no route\n", keep_alive=keep)
            return
        plan = fault.plan(route.fault, self._rng.random)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.abort is not None:
            await _reply(writer, plan.abort, b"fault filter abort\n", keep_alive=keep)
            return
        if route.rate_limit is not None and not self._take_token(service, route):
            await _reply(writer, 429, b"local_rate_limited\n", keep_alive=keep)
            return
        chosen = route.split.choose(self._rng.random())
        config = self.policy.destination(service)
        candidates = self._endpoints_of(service, chosen.subset, config)
        if not candidates:
            await _reply(writer, 503, b"no healthy upstream\n", keep_alive=keep)
            return
        state = self._destinations.setdefault(service, _Destination())
        admitted = breaker.start_request(config.connection_pool, state.load)
        if isinstance(admitted, breaker.Overflow):
            extra = [(b"x-envoy-overloaded", b"true")]
            await _reply(writer, 503, b"overflow\n", keep_alive=keep, headers=extra)
            return
        state.load = admitted
        try:
            await self._forward(
                request=request, body=body, target=target, route=route, config=config,
                state=state, candidates=candidates, writer=writer,
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
    ) -> None:
        policy = route.retries
        deadline = None if route.timeout is None else self._clock() + route.timeout
        out_headers = _encode(rewrite(route.headers.request, _decode(http1.forwardable(
            request.headers))))  # fmt: skip
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
                    body=body, timeout=timeout,
                )  # fmt: skip
            finally:
                state.active[endpoint] -= 1
                if holding_retry:
                    state.load = breaker.finish_retry(state.load)
                    holding_retry = False
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
                await self._respond(request, route, attempt, writer)
                return
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
    ) -> _Attempt:
        host_header = [(b"host", endpoint.address.encode())]
        payload = http1.request_head(method, target, host_header + headers, len(body)) + body
        connection: Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                for fresh in (False, True):
                    try:
                        connection = await self._pool.acquire(endpoint.host, endpoint.port)
                    except OSError:
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

    async def _respond(
        self,
        request: http1.Message,
        route: HttpRoute,
        attempt: _Attempt,
        writer: asyncio.StreamWriter,
    ) -> None:
        keep = request.keep_alive
        response, connection = attempt.response, attempt.connection
        if response is None or connection is None:
            assert isinstance(attempt.outcome, Failure)
            status = status_for(attempt.outcome)
            text = b"upstream request timeout\n" if status == 504 else b"upstream connect error\n"
            await _reply(writer, status, text, keep_alive=keep)
            return
        headers = _encode(rewrite(route.headers.response, _decode(http1.forwardable(
            response.headers))))  # fmt: skip
        no_body = request.method == b"HEAD" or response.status in (204, 304)
        length = 0 if no_body else response.content_length
        writer.write(http1.response_head(response.status, headers, length=length, keep_alive=keep))
        chunked = length is None
        try:
            while (piece := await connection.reader.body_piece(response)) is not None:
                writer.write(http1.chunk(piece) if chunked else piece)
                await writer.drain()
        except (OSError, http1.ProtocolError):
            connection.close()
            raise ConnectionError("upstream broke off mid-body") from None
        if chunked:
            writer.write(http1.LAST_CHUNK)
        await writer.drain()
        if response.keep_alive and not connection.reader.eof:
            self._pool.release(connection)
        else:
            connection.close()

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
                if state.ring is None or state.ring_version != self.endpoints.version:
                    state.ring = HashRing.build(usable)
                    state.ring_version = self.endpoints.version
                return state.ring.pick(key.decode("latin-1"))
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


async def _reply(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    keep_alive: bool,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A response the proxy makes itself (404, 429, 503, 504, faults)."""
    extra = [(b"content-type", b"text/plain"), *(headers or [])]
    writer.write(http1.response_head(status, extra, length=len(body), keep_alive=keep_alive))
    writer.write(body)
    await writer.drain()
