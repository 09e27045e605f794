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

The common path is kept short on purpose: what a route asks is read from
its :class:`~dirigent.mesh.proxy.RoutePlan` (worked out once per policy),
the breaker's and outlier detection's state are counters updated in place,
the trace context is one formatting of bytes, and the clock is read for a
timeout only when the route has one.

An upgrade request (WebSocket) goes the same way; when the upstream answers
``101`` the client and the upstream connection are joined and bytes flow
both ways until either side closes. A :class:`Shadow` is a mirrored copy of
a request: sent, its answer read and dropped.

This module must never decide anything itself: every decision is a call into
:mod:`dirigent.mesh.policy` (or a counter that the unit tests hold to it); it
keeps only the bookkeeping of one request.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from dirigent.mesh import http1
from dirigent.mesh.heads import Request, header_block, next_traceparent
from dirigent.mesh.identity import peer_identity
from dirigent.mesh.policy import retry
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.policy.headers import rewrite_bytes
from dirigent.mesh.policy.outcome import Failure, Outcome, status_for
from dirigent.mesh.relay import Relay
from dirigent.mesh.upstream import Connection
from dirigent.mesh.wire import ServerConnection

if TYPE_CHECKING:
    from dirigent.mesh.proxy import Plan, Proxy, RoutePlan

_TRACEPARENT = b"traceparent"
_OVERLOADED = [(b"x-envoy-overloaded", b"true")]
#: request headers never passed on as they came: hop-by-hop ones, the length
#: (re-framed), the Host (set per endpoint) and the traceparent (this hop's)
_DROPPED = http1.HOP_BY_HOP | {b"content-length", b"host", _TRACEPARENT}
#: methods whose request always states its body's length, even an empty one
_FRAMED = (b"POST", b"PUT", b"PATCH")


class Exchange(Relay):
    """The state of one request between its arrival and the end of its response."""

    __slots__ = (
        "admitted", "attempt", "candidates", "connecting", "connection", "counted", "deadline",
        "endpoint", "head", "holding_retry", "last", "parent_id", "plan", "proxy", "request",
        "retries", "route", "series", "stale_left", "start_wall", "started", "status", "target",
        "timer", "traceparent", "waiting",
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
        telemetry = proxy.telemetry
        # The wall clock only feeds spans and access logs.
        self.start_wall = (
            proxy.wall() if telemetry.spans is not None or telemetry.access_log is not None else 0.0
        )
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
        # A first route without conditions takes every request: no call for that.
        route = self.route = (
            plan.routes[0] if plan.catch_all == 0 else plan.route(request, self.target)
        )
        if route is None:
            series = plan.none_series or proxy.series(plan, None)
        else:
            series = route.series or proxy.series(plan, route)
        self.series = series
        series.in_flight += 1  # Series.start(), without the call
        self.traceparent, self.parent_id = next_traceparent(request.traceparent, proxy.bits)
        if route is None:
            self._answer(404, b"no route\n")
            return
        if route.rate_limit is not None and not proxy.take_token(plan.service, route.route):
            self._answer(429, b"local_rate_limited\n")
            return
        split = route.split
        subset = route.subset if split is None else split.choose(proxy.rng.random()).subset
        config = plan.config
        candidates = (
            proxy.endpoints.get(plan.service)
            if subset is None
            else proxy.endpoints_of(plan.service, subset, config)
        )
        if not candidates:
            self._answer(503, b"no healthy upstream\n")
            return
        if not plan.state.counters.start_request(config.connection_pool):
            self._answer(503, b"overflow\n", _OVERLOADED)
            return
        self.admitted = True
        self.candidates = candidates
        if route.timeout is not None:
            self.deadline = self.started + route.timeout
        if (
            request.connection is None
            and request.upgrade is None
            and not request.body
            and request.method not in _FRAMED
        ):
            # The common case of _headers, without the call: lines, rewrite and tail at once.
            self.head = header_block(
                request.headers, _DROPPED, route.request_ops, b"traceparent: ", self.traceparent,
                b"\r\n\r\n",
            )  # fmt: skip
        else:
            self.head = self._headers(request, route)
        if route.mirror is not None:
            proxy.shadow(
                route.mirror, plan, request=request, target=self.target, head=self.head,
                timeout=route.timeout,
            )  # fmt: skip
        self._try()

    def _headers(self, request: Request, route: RoutePlan) -> bytes:
        """Everything of the upstream request after its Host line, made once for all attempts."""
        dropped = _DROPPED
        if request.connection is not None:
            # The headers the Connection header names are hop-by-hop too.
            dropped = _DROPPED | {t.strip().lower() for t in request.connection.split(b",")}
        body = request.body
        tail = [b"traceparent: ", self.traceparent, b"\r\n"]
        if request.upgrade is not None:
            # Hop-by-hop, yet what this hop is asked to do: passed on as such.
            tail += (b"connection: upgrade\r\nupgrade: ", request.upgrade, b"\r\n")
        if body or request.method in _FRAMED:
            tail += (b"content-length: ", b"%d" % len(body), b"\r\n")
        tail += (b"\r\n", body)
        return header_block(request.headers, dropped, route.request_ops, *tail)

    # -- attempts -----------------------------------------------------------

    def _try(self) -> None:
        proxy, plan = self.proxy, self.plan
        state = plan.state
        candidates = self.candidates
        if plan.round_robin and not state.outliers.state.hosts:
            # What pick() does when no endpoint is on outlier record, without the call.
            index = state.cursor % len(candidates)
            state.cursor = (index + 1) % len(candidates)
            endpoint = self.endpoint = candidates[index]
        else:
            endpoint = self.endpoint = proxy.pick(plan, state, candidates, self.request)
        if plan.counts_active:
            active = state.active
            active[endpoint] = active.get(endpoint, 0) + 1
            self.counted = True
        self.attempt += 1
        self.stale_left = True
        route = self.route
        assert route is not None
        if route.timed:
            if self.attempt == 1 and route.deadlines is not None:
                # Every first attempt of this route has the same timeout: one
                # queue and one timer for all of them, not a timer each.
                route.deadlines.add(self, self.started + route.first_timeout, proxy.clock)
            else:
                timeout = retry.try_timeout(route.retries, proxy.clock(), self.deadline)
                if timeout is not None:
                    loop = asyncio.get_running_loop()
                    self.timer = loop.call_later(timeout, self.timed_out, self.attempt)
        # The common case of _acquire, inline: an idle pooled connection.
        connection = plan.pool.take_idle((endpoint.host, endpoint.port))
        if connection is None:
            self._acquire()
        elif plan.expected is None:
            self.connection = connection
            request = self.request
            host = state.hosts.get(connection.address) or state.host_line(connection.address)
            payload = b"".join((
                request.method, b" ", self.target, b" HTTP/1.1\r\nhost: ", host, b"\r\n",
                self.head,
            ))  # fmt: skip
            connection.send(self, payload, request.method == b"HEAD")
        else:
            self._send(connection)

    def _acquire(self) -> None:
        """A connection within the destination's limit: idle, new, or queued for one."""
        plan, endpoint = self.plan, self.endpoint
        assert endpoint is not None
        state, limits = plan.state, plan.config.connection_pool
        counters = state.counters
        address = (endpoint.host, endpoint.port)
        while True:
            connection = plan.pool.take_idle(address)
            if connection is not None:
                self._send(connection)
                return
            if counters.open_connection(limits):
                task = asyncio.get_running_loop().create_task(plan.pool.connect(address))
                self.connecting = task
                task.add_done_callback(functools.partial(self._connected, attempt=self.attempt))
                return
            if plan.pool.evict_idle(state):
                continue  # an idle connection elsewhere made room for this one
            if not counters.queue(limits):
                self._end_attempt()
                self._answer(503, b"overflow\n", _OVERLOADED)
                return
            self.waiting = True
            state.waiters.append(self)
            return

    def woken(self, attempt: int) -> None:
        """A connection freed up while this request was queued for one."""
        self.plan.state.counters.dequeue()
        if self.attempt_open(attempt):  # not if it timed out meanwhile
            self._acquire()

    def _connected(self, task: asyncio.Task[Connection], *, attempt: int) -> None:
        state = self.plan.state
        if self.connecting is task:
            self.connecting = None
        if task.cancelled() or task.exception() is not None:
            state.connection_closed()
            if self.attempt_open(attempt):
                self._fail(Failure.CONNECT_FAILURE)
            return
        connection = task.result()
        connection.owner = state
        connection.on_close = state.connection_closed
        connection.on_idle = state.wake_one
        if not self.attempt_open(attempt):
            connection.close()
            return
        self._send(connection)

    def _send(self, connection: Connection) -> None:
        plan = self.plan
        expected = plan.expected
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
        payload = b"".join((
            request.method, b" ", self.target, b" HTTP/1.1\r\nhost: ",
            plan.state.host_line(connection.address), b"\r\n", self.head,
        ))  # fmt: skip
        connection.send(self, payload, request.method == b"HEAD")

    # -- what the upstream connection reports ---------------------------------

    def response_head(
        self, connection: Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.connection = None
        self._end_attempt()
        route = self.route
        assert route is not None
        if status == 101:
            self._switch(connection, headers)
            return
        if self._retried(status, 500 <= status <= 599):
            connection.close()  # its body is not wanted; draining costs more
            return
        self.status = status
        ops = route.response_ops
        if ops is not None:
            headers = rewrite_bytes(ops, headers)
        request = self.request
        self.begin_relay(connection, status, headers, request.keep_alive, request.method == b"HEAD")

    def response_whole(self, connection: Connection, status: int, data: bytes) -> bool:
        """response_head, response_body and response_end at once, the head passed on as it came."""
        request = self.request
        route = self.route
        assert route is not None
        # The general path would add "connection: close" or rewrite headers.
        if not request.keep_alive or route.response_ops is not None:
            return False
        self.connection = None
        endpoint = self.endpoint
        if (
            self.timer is None
            and not self.counted
            and not self.holding_retry
            and endpoint is not None
        ):
            # _end_attempt() of an attempt that holds nothing to give back, without the call.
            self.endpoint, self.last = None, endpoint
        else:
            self._end_attempt()
        failed = status >= 500
        # _retried can only observe and say no to a success outside the
        # retriable set while no endpoint has a run of failures: skipped then.
        if (failed or status in route.retriable or self.plan.state.outliers.running) and (
            self._retried(status, failed)
        ):
            connection.close()  # as response_head does with an answer it retries
            return True
        self.status = status
        client = self.client
        if not client.closed:  # ServerConnection.write(), without the call
            assert client.transport is not None
            client.transport.write(data)
        self.plan.pool.release(connection)
        self._done()
        client.finish(True)
        return True

    def _switch(self, connection: Connection, headers: list[tuple[bytes, bytes]]) -> None:
        """The upstream agreed to an upgrade: from here on, bytes both ways."""
        self.status = 101
        if self.request.upgrade is None:
            # A 101 nobody asked for: the connection cannot be read as HTTP any more.
            connection.close()
            self._answer(502, b"upstream protocol error\n")
            return
        self._done()
        self.begin_tunnel(connection, headers)

    def response_end(self, connection: Connection) -> None:
        self.end_relay()
        self.plan.pool.release(connection)
        self._done()
        self.client.finish(self.request.keep_alive)

    def response_lost(self, connection: Connection) -> None:
        if self.cut_relay(connection):
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

    def timed_out(self, attempt: int) -> None:
        if not self.attempt_open(attempt):
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
            self.plan.state.counters.dequeue()
        self._fail(Failure.TIMEOUT)

    # -- outcomes -----------------------------------------------------------

    def attempt_open(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` is still waiting for its outcome."""
        return attempt == self.attempt and self.endpoint is not None

    def _end_attempt(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        endpoint = self.endpoint
        if endpoint is None:
            return
        self.endpoint = None
        if self.counted:
            self.plan.state.active[endpoint] -= 1
            self.counted = False
        if self.holding_retry:
            self.plan.state.counters.finish_retry()
            self.holding_retry = False
        self.last = endpoint

    def _retried(self, outcome: Outcome, failed: bool) -> bool:
        """Fold ``outcome`` into outlier detection; start a retry if the policy says so.

        ``failed`` is ``is_5xx(outcome)``, which the caller knows without a call.
        """
        proxy, plan = self.proxy, self.plan
        assert self.last is not None
        proxy.observe(plan, self.last, outcome, failed=failed, pool_size=len(self.candidates))
        route = self.route
        assert route is not None
        # retry.decide() answers NOT_RETRIABLE first of all for an outcome
        # outside this set (and gives up with no attempts configured), so
        # a success ends here with one set look-up.
        if outcome not in route.retriable:
            return False
        config, counters = plan.config, plan.state.counters
        budget_ok = (
            retry.within_budget(config.retry_budget, counters.requests, counters.retries)
            and counters.retries < config.connection_pool.max_retries
        )
        decision = retry.decide(
            route.retries, outcome, self.retries, now=proxy.clock(), deadline=self.deadline,
            budget_ok=budget_ok, draw=proxy.rng.random,
        )  # fmt: skip
        if not isinstance(decision, retry.Retry):
            return False
        self.retries = decision.retry
        # A retry holds its slot of max_retries from the decision until its
        # attempt ends, as Envoy counts retries in flight.
        if counters.start_retry(config.connection_pool):
            self.holding_retry = True
        asyncio.get_running_loop().call_later(decision.delay, self._try)
        return True

    def _fail(self, failure: Failure) -> None:
        """The attempt produced no response: retry, or answer for it."""
        self.connection = None
        self._end_attempt()
        if self._retried(failure, True):
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
            plan.state.counters.finish_request()
        duration = proxy.clock() - self.started
        telemetry = proxy.telemetry
        if telemetry.spans is None and telemetry.access_log is None:
            # Counters only: the series is all record() would touch.
            self.series.finish(self.status, duration)
            return
        route = self.route
        telemetry.record(
            self.series, "client", proxy.source, plan.service,
            route.name if route is not None else "none", self.request.method, self.target,
            self.status, self.start_wall, duration, self.traceparent, self.parent_id,
        )  # fmt: skip


class Deadlines:
    """The first attempts' timeouts of one route, kept in order behind one timer.

    A route's first attempts all have the same timeout, so their deadlines
    come in the order the requests do: a queue with one timer armed for the
    earliest stands for a timer per request (arming and cancelling a loop
    timer costs more than the rest of a request's bookkeeping). Entries of
    attempts that ended are dropped from the front as new ones arrive and
    skipped when the timer fires; a deadline out of order (a clock that went
    back) gets a timer of its own, so none fires late.
    """

    __slots__ = ("_clock", "_entries", "_timer")

    def __init__(self) -> None:
        self._entries: deque[tuple[float, Exchange, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._clock: Callable[[], float] | None = None

    def add(self, exchange: Exchange, at: float, clock: Callable[[], float]) -> None:
        entries = self._entries
        # attempt_open() inline: this runs for every first attempt of the route.
        while entries:
            _, first, attempt = entries[0]
            if attempt == first.attempt and first.endpoint is not None:
                break
            entries.popleft()
        if entries and at < entries[-1][0]:
            loop = asyncio.get_running_loop()
            exchange.timer = loop.call_later(at - clock(), exchange.timed_out, exchange.attempt)
            return
        entries.append((at, exchange, exchange.attempt))
        if self._timer is None:
            self._clock = clock
            self._timer = asyncio.get_running_loop().call_later(at - clock(), self._fire)

    def _fire(self) -> None:
        self._timer = None
        entries = self._entries
        assert self._clock is not None
        now = self._clock()
        while entries:
            at, exchange, attempt = entries[0]
            if not exchange.attempt_open(attempt):
                entries.popleft()
            elif at <= now:
                entries.popleft()
                exchange.timed_out(attempt)
            else:
                self._timer = asyncio.get_running_loop().call_later(at - now, self._fire)
                return


class Shadow:
    """A mirrored copy of a request: sent to one endpoint, its answer read and dropped.

    Admitted by the proxy through the mirror destination's request limit; it
    takes an idle connection or opens one within the connection limit, and
    otherwise gives up rather than queue. Whatever becomes of it (a failure,
    a timeout) ends here: the primary request never hears of it.
    """

    __slots__ = ("address", "connection", "ended", "payload", "plan", "proxy", "timeout", "timer")

    def __init__(
        self,
        proxy: Proxy,
        plan: Plan,
        address: tuple[str, int],
        payload: bytes,
        timeout: float,
    ) -> None:
        self.proxy = proxy
        self.plan = plan
        self.address = address
        self.payload = payload
        self.timeout = timeout
        self.ended = False
        self.connection: Connection | None = None
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        plan = self.plan
        self.proxy.shadows += 1
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.timeout, self._timed_out)
        connection = plan.pool.take_idle(self.address)
        if connection is not None:
            self._send(connection)
            return
        state = plan.state
        if not state.counters.open_connection(plan.config.connection_pool):
            self._end()
            return
        task = loop.create_task(plan.pool.connect(self.address))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Connection]) -> None:
        state = self.plan.state
        if task.cancelled() or task.exception() is not None:
            state.connection_closed()
            self._end()
            return
        connection = task.result()
        connection.owner = state
        connection.on_close = state.connection_closed
        connection.on_idle = state.wake_one
        if self.timer is None:  # timed out meanwhile
            connection.close()
            return
        expected = self.plan.expected
        if expected is not None and peer_identity(connection.ssl_object()) != expected:
            connection.close()
            self._end()
            return
        self._send(connection)

    def _send(self, connection: Connection) -> None:
        self.connection = connection
        connection.send(self, self.payload, False)

    def _timed_out(self) -> None:
        self.timer = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self._end()

    def _end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.ended:
            self.ended = True
            self.proxy.shadows -= 1
            self.plan.state.counters.finish_request()

    # -- what the connection reports: everything but the end is dropped ------

    def response_head(
        self,
        connection: Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],  # noqa: ARG002 - a mirror's answer is not read
    ) -> None:
        if status == 101:
            connection.close()  # a mirror is never joined to anybody
            self.connection = None
            self._end()

    def response_whole(self, connection: Connection, status: int, data: bytes) -> bool:  # noqa: ARG002 - dropped
        self.connection = None
        self.plan.pool.release(connection)
        self._end()
        return True

    def response_body(self, piece: bytes) -> None:
        pass

    def response_flush(self) -> None:
        pass

    def response_end(self, connection: Connection) -> None:
        self.connection = None
        self.plan.pool.release(connection)
        self._end()

    def response_lost(self, connection: Connection) -> None:  # noqa: ARG002 - any loss ends it
        self.connection = None
        self._end()
