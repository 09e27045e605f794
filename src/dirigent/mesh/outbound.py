"""One request through the outbound proxy, driven by event-loop callbacks.

An :class:`Exchange` is made per request and walks the order
:mod:`dirigent.mesh.proxy` describes: route, rate limit, split, breaker,
then attempts (pick, connect or reuse, send, wait for the head under the
per-try timeout), each folded into outlier detection and the retry decision,
until a response is relayed or a failure answered. Waiting is never an
await: a timer (``call_later``) stands for a timeout or a backoff, the
upstream connection calls back with the response head and body, and a
connection that must be opened is the one place a task runs. A stale pooled
connection (closed by the upstream while idle) is not the endpoint failing:
the attempt goes once more on a new connection.

This module must never decide anything itself: every decision is a call into
:mod:`dirigent.mesh.policy`; it keeps only the bookkeeping of one request.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from dirigent.mesh import http1
from dirigent.mesh.ca import peer_identity
from dirigent.mesh.config import HttpRoute
from dirigent.mesh.policy import breaker, retry, trace
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.policy.headers import HeaderOps, rewrite
from dirigent.mesh.policy.outcome import Failure, Outcome, status_for
from dirigent.mesh.relay import Relay
from dirigent.mesh.upstream import Connection
from dirigent.mesh.wire import Request, ServerConnection

if TYPE_CHECKING:
    from dirigent.mesh.proxy import Plan, Proxy

_TRACEPARENT = b"traceparent"
_OVERLOADED = [(b"x-envoy-overloaded", b"true")]
#: request headers never passed on as they came: hop-by-hop ones, the length
#: (re-framed), the Host (set per endpoint) and the traceparent (this hop's)
_DROPPED = http1.HOP_BY_HOP | {b"content-length", b"host", _TRACEPARENT}


class Exchange(Relay):
    """The state of one request between its arrival and the end of its response."""

    __slots__ = (
        "admitted", "attempt", "candidates", "connecting", "connection", "counted", "deadline",
        "endpoint", "head", "holding_retry", "last", "plan", "proxy", "request", "retries", "route",
        "series", "span", "stale_left", "start_wall", "started", "status", "target", "timer",
        "waiting",
    )  # fmt: skip

    def __init__(
        self,
        proxy: Proxy,
        plan: Plan,
        request: Request,
        client: ServerConnection,
        target: bytes,
    ) -> None:
        # Relay's fields set here rather than through its __init__: one call fewer per request.
        self.client = client
        self._pending = b""
        self._chunked = False
        self.relaying = None
        self.proxy = proxy
        self.plan = plan
        self.request = request
        self.target = target
        self.started = proxy.clock()
        self.start_wall = proxy.wall()
        self.status = 500
        self.admitted = False
        self.attempt = 0
        self.retries = 0
        self.holding_retry = False
        self.waiting = False
        self.counted = False
        self.stale_left = False
        self.timer: asyncio.TimerHandle | None = None
        self.connection: Connection | None = None
        self.connecting: asyncio.Task[Connection] | None = None
        self.deadline: float | None = None
        self.candidates: tuple[Endpoint, ...] = ()
        self.head = b""
        self.last: Endpoint | None = None
        self.endpoint: Endpoint | None = None

    # -- the request's way in -----------------------------------------------

    def start(self) -> None:
        proxy, plan, request = self.proxy, self.plan, self.request
        route = self.route = plan.route(request, self.target)
        self.series = series = proxy.series(plan, route.name if route is not None else "none")
        series.start()
        self.span = trace.hop(request.header(_TRACEPARENT), proxy.rng.getrandbits)
        if route is None:
            self._answer(404, b"no route\n")
            return
        if route.rate_limit is not None and not proxy.take_token(plan.service, route):
            self._answer(429, b"local_rate_limited\n")
            return
        chosen = route.split.choose(proxy.rng.random())
        config = plan.config
        candidates = proxy.endpoints_of(plan.service, chosen.subset, config)
        if not candidates:
            self._answer(503, b"no healthy upstream\n")
            return
        state = plan.state
        admitted = breaker.start_request(config.connection_pool, state.load)
        if isinstance(admitted, breaker.Overflow):
            self._answer(503, b"overflow\n", _OVERLOADED)
            return
        state.load = admitted
        self.admitted = True
        self.candidates = candidates
        if route.timeout is not None:
            self.deadline = proxy.clock() + route.timeout
        self.head = self._headers(request, route)
        self._try()

    def _headers(self, request: Request, route: HttpRoute) -> bytes:
        """Everything of the upstream request after its Host line, made once for all attempts."""
        headers = request.headers
        if request.connection is not None:
            named = {
                token.strip().lower()
                for name, value in headers
                if name == b"connection"
                for token in value.split(b",")
            }
            headers = [h for h in headers if h[0] not in named]
        forwarded = [h for h in headers if h[0] not in _DROPPED]
        ops = route.headers.request
        if not ops.empty:
            forwarded = _rewritten(ops, forwarded)
        forwarded.append((_TRACEPARENT, self.span.traceparent))
        return http1.header_block(request.method, forwarded, request.body)

    # -- attempts -----------------------------------------------------------

    def _try(self) -> None:
        proxy, plan = self.proxy, self.plan
        route = self.route
        assert route is not None
        state = plan.state
        endpoint = self.endpoint = proxy.pick(plan.config, state, self.candidates, self.request)
        timeout = retry.try_timeout(route.retries, proxy.clock(), self.deadline)
        if plan.counts_active:
            active = state.active
            active[endpoint] = active.get(endpoint, 0) + 1
            self.counted = True
        self.attempt += 1
        self.stale_left = True
        if timeout is not None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(timeout, self._timed_out, self.attempt)
        self._acquire()

    def _acquire(self) -> None:
        """A connection within the destination's limit: idle, new, or queued for one."""
        plan, endpoint = self.plan, self.endpoint
        assert endpoint is not None
        state, limits = plan.state, plan.config.connection_pool
        address = (endpoint.host, endpoint.port)
        while True:
            connection = plan.pool.take_idle(address)
            if connection is not None:
                self._send(connection)
                return
            opened = breaker.open_connection(limits, state.load)
            if isinstance(opened, breaker.Load):
                state.load = opened
                task = asyncio.get_running_loop().create_task(plan.pool.connect(address))
                self.connecting = task
                task.add_done_callback(functools.partial(self._connected, attempt=self.attempt))
                return
            if plan.pool.evict_idle(state):
                continue  # an idle connection elsewhere made room for this one
            queued = breaker.queue(limits, state.load)
            if isinstance(queued, breaker.Overflow):
                self._end_attempt()
                self._answer(503, b"overflow\n", _OVERLOADED)
                return
            state.load = queued
            self.waiting = True
            state.waiters.append(self)
            return

    def woken(self, attempt: int) -> None:
        """A connection freed up while this request was queued for one."""
        state = self.plan.state
        state.load = breaker.dequeue(state.load)
        if self._attempt_open(attempt):  # not if it timed out meanwhile
            self._acquire()

    def _connected(self, task: asyncio.Task[Connection], *, attempt: int) -> None:
        state = self.plan.state
        if self.connecting is task:
            self.connecting = None
        if task.cancelled() or task.exception() is not None:
            state.connection_closed()
            if self._attempt_open(attempt):
                self._fail(Failure.CONNECT_FAILURE)
            return
        connection = task.result()
        connection.owner = state
        connection.on_close = state.connection_closed
        connection.on_idle = state.wake_one
        if not self._attempt_open(attempt):
            connection.close()
            return
        self._send(connection)

    def _send(self, connection: Connection) -> None:
        expected = self.plan.expected
        # A certificate from the mesh CA, but not the callee's: talking to it
        # would hand one service's traffic to another.
        if (
            expected is not None
            and not connection.reused
            and peer_identity(connection.ssl_object()) != expected
        ):
            connection.close()
            self._fail(Failure.CONNECT_FAILURE)
            return
        self.connection = connection
        request = self.request
        endpoint = self.endpoint
        assert endpoint is not None
        payload = b"".join((
            request.method, b" ", self.target, b" HTTP/1.1\r\nhost: ",
            endpoint.address.encode(), b"\r\n", self.head,
        ))  # fmt: skip
        connection.send(self, payload, head_only=request.method == b"HEAD")

    # -- what the upstream connection reports ---------------------------------

    def response_head(
        self, connection: Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.connection = None
        self._end_attempt()
        route = self.route
        assert route is not None
        if self._retried(status):
            connection.close()  # its body is not wanted; draining costs more
            return
        self.status = status
        forwarded = headers
        ops = route.headers.response
        if not ops.empty:
            forwarded = _rewritten(ops, forwarded)
        self.begin_relay(
            connection, status, forwarded, keep_alive=self.request.keep_alive,
            head_only=self.request.method == b"HEAD",
        )  # fmt: skip

    def response_end(self, connection: Connection) -> None:
        self.end_relay()
        self.plan.pool.release(connection)
        self._done()
        self.client.finish(self.request.keep_alive)

    def response_lost(self, connection: Connection) -> None:
        if self.relaying is connection:
            # The upstream broke off mid-body: the client's response is cut too.
            self.relaying = None
            self.client.backpressure = None
            self.client.close()
            self._done()
            self.client.finish(False)
            return
        self.connection = None
        if connection.reused and self.stale_left:
            # An idle pooled connection the upstream closed meanwhile is not
            # the endpoint failing: once more on a new one.
            self.stale_left = False
            self._acquire()
            return
        self._fail(Failure.RESET)

    def _timed_out(self, attempt: int) -> None:
        if not self._attempt_open(attempt):
            return
        self.timer = None
        if self.connection is not None:
            self.connection.close()  # a response may still arrive on it; nobody would read it
            self.connection = None
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.waiting:
            self.waiting = False
            state = self.plan.state
            state.load = breaker.dequeue(state.load)
        self._fail(Failure.TIMEOUT)

    # -- outcomes -----------------------------------------------------------

    def _attempt_open(self, attempt: int) -> bool:
        return attempt == self.attempt and self.endpoint is not None

    def _end_attempt(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        endpoint = self.endpoint
        if endpoint is None:
            return
        self.endpoint = None
        state = self.plan.state
        if self.counted:
            state.active[endpoint] -= 1
            self.counted = False
        if self.holding_retry:
            state.load = breaker.finish_retry(state.load)
            self.holding_retry = False
        self.last = endpoint

    def _retried(self, outcome: Outcome) -> bool:
        """Fold ``outcome`` into outlier detection; start a retry if the policy says so."""
        proxy, plan = self.proxy, self.plan
        config, state = plan.config, plan.state
        if config.outlier_detection is not None:
            assert self.last is not None
            proxy.observe(config, state, self.last, outcome, len(self.candidates))
        route = self.route
        assert route is not None
        policy = route.retries
        # decide() answers NOT_RETRIABLE first of all for such an outcome;
        # asking retriable() alone spares the budget arithmetic on success.
        if not plan.retriable(route, outcome):
            return False
        budget_ok = (
            retry.within_budget(config.retry_budget, state.load.requests, state.load.retries)
            and state.load.retries < config.connection_pool.max_retries
        )
        decision = retry.decide(
            policy, outcome, self.retries, now=proxy.clock(), deadline=self.deadline,
            budget_ok=budget_ok, draw=proxy.rng.random,
        )  # fmt: skip
        if not isinstance(decision, retry.Retry):
            return False
        self.retries = decision.retry
        # A retry holds its slot of max_retries from the decision until its
        # attempt ends, as Envoy counts retries in flight.
        started = breaker.start_retry(config.connection_pool, state.load)
        if isinstance(started, breaker.Load):
            state.load = started
            self.holding_retry = True
        asyncio.get_running_loop().call_later(decision.delay, self._try)
        return True

    def _fail(self, failure: Failure) -> None:
        """The attempt produced no response: retry, or answer for it."""
        self.connection = None
        self._end_attempt()
        if self._retried(failure):
            return
        status = status_for(failure)
        text = b"upstream request timeout\n" if status == 504 else b"upstream connect error\n"
        self._answer(status, text)

    def _answer(
        self, status: int, text: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Answer with a response the mesh makes, and close the exchange."""
        keep = self.request.keep_alive
        self.status = status
        self.client.write(http1.text_response(status, text, keep_alive=keep, headers=headers))
        self._done()
        self.client.finish(keep)

    def _done(self) -> None:
        proxy, plan = self.proxy, self.plan
        if self.admitted:
            self.admitted = False
            plan.state.load = breaker.finish_request(plan.state.load)
        duration = proxy.clock() - self.started
        telemetry = proxy.telemetry
        series = self.series
        if telemetry.spans is None and telemetry.access_log is None:
            # Counters only: the series is all record() would touch.
            series.finish(self.status, duration)
            return
        span = self.span
        route = self.route
        telemetry.record(
            series=series, kind="client", source=proxy.source, destination=plan.service,
            route=route.name if route is not None else "none", method=self.request.method,
            path=self.target, status=self.status, start=self.start_wall, duration=duration,
            trace_id=span.trace_id, span_id=span.span_id, parent_id=span.parent_id,
        )  # fmt: skip


def _rewritten(ops: HeaderOps, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` after the route's rewrite, which works on text."""
    decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in rewrite(ops, decoded)]
