"""The inbound listener: the callee's side of a hop, in front of one replica.

Per connection, :mod:`dirigent.mesh.listener` settles the mTLS mode and the
caller's identity. Per request, in this order: match the service's route
(for its fault and its metric label), authorize the caller (403 naming the
policy that denied it), inject the route's faults (delay, then abort), then
pass the request to the replica and stream its response back. The replica is
told who called in ``x-forwarded-client-cert`` (``By=<callee>;URI=<caller>``,
as Envoy writes it); one sent by the client is dropped first, so a caller
cannot claim to be someone else.

Faults are injected here, on the callee's side, so a fault configured for a
service hits every caller the same way, and the caller's retries see it as
they would see the service fail.

Like the outbound proxy, a request runs as event-loop callbacks (an
:class:`_Exchange`), not a coroutine: a delay fault is a timer, the replica's
response arrives through :mod:`dirigent.mesh.upstream`'s protocol, and only
opening a new connection to the replica runs as a task.

Every decision is made by :mod:`dirigent.mesh.policy`; this module must
never decide anything itself, and reads the clock and draws randomness only
through what it is given.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from dirigent.mesh import http1
from dirigent.mesh.config import MeshPolicy, MtlsMode
from dirigent.mesh.listener import Listener
from dirigent.mesh.policy import authz, fault, trace
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.relay import Relay
from dirigent.mesh.telemetry import Series, Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Connection, Pool
from dirigent.mesh.wire import MAX_BODY, Request, ServerConnection

__all__ = ["MAX_BODY", "UNKNOWN_SOURCE", "Inbound"]

#: the source label of a caller without an identity (plain text)
UNKNOWN_SOURCE = "unknown"
_XFCC = b"x-forwarded-client-cert"
_TRACEPARENT = b"traceparent"
#: request headers never passed on as they came (the length is re-framed)
_DROPPED = http1.HOP_BY_HOP | {b"content-length", _XFCC, _TRACEPARENT}


class Inbound:
    """Authorizes and faults requests for one service, then hands them to its replica."""

    def __init__(
        self,
        app: str,
        service: str,
        policy: MeshPolicy,
        replica: tuple[str, int],
        *,
        tls: ServiceTls | None,
        clock: Callable[[], float],
        rng: random.Random,
        telemetry: Telemetry | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.service = service
        self.replica = replica
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self.telemetry = telemetry or Telemetry()
        self.pool = Pool()
        self.identity = authz.service_identity(app, service).encode()
        self.set_policy(policy)
        self.listener = Listener(self._connection, mode=self._mode, tls=tls)

    def set_policy(self, policy: MeshPolicy) -> None:
        """Swap the policy; a request in progress keeps the one it started with."""
        access = policy.access_for(self.service)
        # Resolved once per policy, not per request: service names become
        # SPIFFE IDs, and the routes and their series are looked up once.
        self.access = (access.resolved(self.app), access.default_deny)
        self.routes = policy.routes_for(self.service)
        self.series: dict[tuple[str, str], Series] = {}
        self.policy = policy

    def _mode(self) -> MtlsMode:
        return self.policy.mtls_mode(self.service)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> Listener:
        return await self.listener.start(host, port)

    def close(self) -> None:
        self.listener.close()
        self.pool.close()

    def _connection(self) -> ServerConnection:
        return ServerConnection(self._dispatch)

    def _dispatch(self, client: ServerConnection, request: Request) -> None:
        _Exchange(self, client, request).start()

    def series_for(self, source: str, route: str) -> Series:
        key = (source, route)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = self.telemetry.metrics.series(
                "destination", source, self.service, route
            )
        return found


class _Exchange(Relay):
    """One request from its arrival at the callee's listener to the end of its response."""

    __slots__ = (
        "head", "inbound", "request", "route", "series", "source", "span", "stale_left",
        "start_wall", "started", "status",
    )  # fmt: skip

    def __init__(self, inbound: Inbound, client: ServerConnection, request: Request) -> None:
        Relay.__init__(self, client)
        self.inbound = inbound
        self.request = request
        self.started = inbound.clock()
        self.start_wall = inbound.wall()
        self.status = 500
        self.stale_left = True
        self.head = b""

    def start(self) -> None:
        inbound, request, client = self.inbound, self.request, self.client
        method, target = request.method, request.target
        headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
        head = RequestHead(method.decode(), target.decode("latin-1"), headers)
        route = self.route = first_match(inbound.routes, head)
        principal = client.principal
        self.source = principal or UNKNOWN_SOURCE
        self.series = inbound.series_for(self.source, route.name if route is not None else "none")
        self.series.start()
        self.span = trace.hop(request.header(_TRACEPARENT), inbound.rng.getrandbits)
        policies, default_deny = inbound.access
        decision = authz.authorize(
            policies, authz.Request(principal, head.method, head.path), default_deny=default_deny
        )
        if not decision.allowed:
            extra = [(b"x-dirigent-policy", decision.policy.encode())]
            self._answer(403, decision.reason.encode() + b"\n", extra)
            return
        plan = fault.plan(route.fault if route is not None else None, inbound.rng.random)
        if plan.delay:
            asyncio.get_running_loop().call_later(plan.delay, self._after_delay, plan.abort)
        else:
            self._after_delay(plan.abort)

    def _after_delay(self, abort: int | None) -> None:
        if abort is not None:
            self._answer(abort, b"fault filter abort\n")
            return
        request, principal = self.request, self.client.principal
        headers = request.headers
        if request.connection is not None:
            headers = http1.forwardable(headers)  # drops the headers Connection names too
        headers = [h for h in headers if h[0] not in _DROPPED]
        headers.append((_TRACEPARENT, self.span.traceparent))
        if principal is not None:
            identity = self.inbound.identity
            headers.append((_XFCC, b"By=" + identity + b";URI=" + principal.encode()))
        self.head = b"".join((
            request.method, b" ", request.target, b" HTTP/1.1\r\n",
            http1.header_block(request.method, headers, request.body),
        ))  # fmt: skip
        self._acquire()

    def _acquire(self) -> None:
        pool = self.inbound.pool
        connection = pool.take_idle(self.inbound.replica)
        if connection is not None:
            self._send(connection)
            return
        task = asyncio.get_running_loop().create_task(pool.connect(self.inbound.replica))
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Connection]) -> None:
        if task.cancelled() or task.exception() is not None:
            self._answer(503, b"upstream connect error\n")
            return
        self._send(task.result())

    def _send(self, connection: Connection) -> None:
        connection.send(self, self.head, head_only=self.request.method == b"HEAD")

    # -- what the replica's connection reports --------------------------------

    def response_head(
        self, connection: Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status = status
        self.begin_relay(
            connection, status, headers, keep_alive=self.request.keep_alive,
            head_only=self.request.method == b"HEAD",
        )  # fmt: skip

    def response_end(self, connection: Connection) -> None:
        self.end_relay()
        self.inbound.pool.release(connection)
        self._done()
        self.client.finish(self.request.keep_alive)

    def response_lost(self, connection: Connection) -> None:
        if self.relaying is connection:
            # The replica broke off mid-body: the caller's response is cut too.
            self.relaying = None
            self.client.backpressure = None
            self.client.close()
            self._done()
            self.client.finish(False)
            return
        if connection.reused and self.stale_left:
            # An idle connection the replica closed meanwhile is not the
            # replica failing: once more on a new one.
            self.stale_left = False
            self._acquire()
            return
        self._answer(503, b"upstream connect error\n")

    def _answer(
        self, status: int, text: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        keep = self.request.keep_alive
        self.status = status
        self.client.write(http1.text_response(status, text, keep_alive=keep, headers=headers))
        self._done()
        self.client.finish(keep)

    def _done(self) -> None:
        inbound, span = self.inbound, self.span
        route = self.route
        duration = inbound.clock() - self.started
        telemetry = inbound.telemetry
        if telemetry.spans is None and telemetry.access_log is None:
            # Counters only: the series is all record() would touch.
            self.series.finish(self.status, duration)
            return
        telemetry.record(
            series=self.series, kind="server", source=self.source, destination=inbound.service,
            route=route.name if route is not None else "none", method=self.request.method,
            path=self.request.target, status=self.status, start=self.start_wall,
            duration=duration, trace_id=span.trace_id,
            span_id=span.span_id, parent_id=span.parent_id,
        )  # fmt: skip
