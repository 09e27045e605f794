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
opening a new connection to the replica runs as a task. What the policy says
is worked out once per policy: the route of each (method, path) when no
route matches on headers, the authorization decision of each (caller,
method, path) (both pure functions of those, remembered in bounded tables),
and nothing at all when no policy applies. An upgrade request (WebSocket)
is authorized like any other; after the replica's ``101`` bytes flow both
ways until either side closes.

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
from dirigent.mesh.config import HttpRoute, MeshPolicy, MtlsMode
from dirigent.mesh.heads import Request, header_block, next_traceparent
from dirigent.mesh.listener import Listener
from dirigent.mesh.policy import authz, fault
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.relay import Relay
from dirigent.mesh.telemetry import Series, Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Connection, Pool
from dirigent.mesh.wire import MAX_BODY, ServerConnection

__all__ = ["MAX_BODY", "UNKNOWN_SOURCE", "Inbound"]

#: the source label of a caller without an identity (plain text)
UNKNOWN_SOURCE = "unknown"
_XFCC = b"x-forwarded-client-cert"
_TRACEPARENT = b"traceparent"
#: request headers never passed on as they came (the length is re-framed)
_DROPPED = http1.HOP_BY_HOP | {b"content-length", _XFCC, _TRACEPARENT}
#: entries in each per-policy table of remembered routes and decisions
MAX_REMEMBERED = 4096
_UNKNOWN = object()
_ALLOWED = authz.Decision(True, authz.DEFAULT_ALLOW)


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
        #: no policy and no default deny: every caller is allowed, nothing to evaluate
        self.open = not self.access[0] and not access.default_deny
        self.routes = policy.routes_for(self.service)
        self.needs_headers = any(m.headers for r in self.routes for m in r.matches)
        self.series: dict[tuple[str, str], Series] = {}
        self._matched: dict[tuple[bytes, bytes], HttpRoute | None] = {}
        self._decided: dict[tuple[str | None, bytes, bytes], authz.Decision] = {}
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

    def route(self, request: Request) -> HttpRoute | None:
        """The first matching route; :func:`first_match` is asked once per (method, path)."""
        if self.needs_headers:
            return first_match(self.routes, _head(request))
        key = (request.method, request.target.split(b"?", 1)[0])
        matched = self._matched.get(key, _UNKNOWN)
        if matched is _UNKNOWN:
            matched = first_match(self.routes, _head(request))
            if len(self._matched) >= MAX_REMEMBERED:
                self._matched.clear()
            self._matched[key] = matched
        return matched  # type: ignore[return-value]  # _UNKNOWN was replaced above

    def authorize(self, principal: str | None, request: Request) -> authz.Decision:
        """:func:`authz.authorize`, a pure function of (caller, method, path): asked once each."""
        if self.open:
            return _ALLOWED  # what authorize() answers with no policy and no default deny
        path = request.target.split(b"?", 1)[0]
        key = (principal, request.method, path)
        found = self._decided.get(key)
        if found is None:
            policies, default_deny = self.access
            found = authz.authorize(
                policies,
                authz.Request(principal, request.method.decode(), path.decode("latin-1")),
                default_deny=default_deny,
            )
            if len(self._decided) >= MAX_REMEMBERED:
                self._decided.clear()
            self._decided[key] = found
        return found

    def series_for(self, source: str, route: str) -> Series:
        key = (source, route)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = self.telemetry.metrics.series(
                "destination", source, self.service, route
            )
        return found


def _head(request: Request) -> RequestHead:
    headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers}
    return RequestHead(request.method.decode(), request.target.decode("latin-1"), headers)


class _Exchange(Relay):
    """One request from its arrival at the callee's listener to the end of its response."""

    __slots__ = (
        "head", "inbound", "parent_id", "request", "route", "series", "source", "stale_left",
        "start_wall", "started", "status", "traceparent",
    )  # fmt: skip

    def __init__(self, inbound: Inbound, client: ServerConnection, request: Request) -> None:
        # Relay's fields set here rather than through its __init__: one call fewer per request.
        self.client = client
        self._pending = b""
        self._chunked = False
        self.relaying = None
        self.inbound = inbound
        self.request = request
        self.started = inbound.clock()
        telemetry = inbound.telemetry
        self.start_wall = (
            inbound.wall()
            if telemetry.spans is not None or telemetry.access_log is not None
            else 0.0
        )
        self.status = 500
        self.stale_left = True
        self.head = b""

    def start(self) -> None:
        inbound, request, client = self.inbound, self.request, self.client
        route = self.route = inbound.route(request)
        principal = client.principal
        self.source = principal or UNKNOWN_SOURCE
        self.series = inbound.series_for(self.source, route.name if route is not None else "none")
        self.series.start()
        self.traceparent, self.parent_id = next_traceparent(
            request.traceparent, inbound.rng.getrandbits
        )
        decision = inbound.authorize(principal, request)
        if not decision.allowed:
            extra = [(b"x-dirigent-policy", decision.policy.encode())]
            self._answer(403, decision.reason.encode() + b"\n", extra)
            return
        if route is None or route.fault is None:
            self._after_delay(None)  # fault.plan() draws nothing and plans nothing then
            return
        plan = fault.plan(route.fault, inbound.rng.random)
        if plan.delay:
            asyncio.get_running_loop().call_later(plan.delay, self._after_delay, plan.abort)
        else:
            self._after_delay(plan.abort)

    def _after_delay(self, abort: int | None) -> None:
        if abort is not None:
            self._answer(abort, b"fault filter abort\n")
            return
        request, principal = self.request, self.client.principal
        dropped = _DROPPED
        if request.connection is not None:
            # The headers the Connection header names are hop-by-hop too.
            dropped = _DROPPED | {t.strip().lower() for t in request.connection.split(b",")}
        tail = [b"traceparent: ", self.traceparent, b"\r\n"]
        if principal is not None:
            identity = self.inbound.identity
            tail += (b"x-forwarded-client-cert: By=", identity, b";URI=", principal.encode())
            tail.append(b"\r\n")
        if request.upgrade is not None:
            tail += (b"connection: upgrade\r\nupgrade: ", request.upgrade, b"\r\n")
        body = request.body
        if body or request.method in (b"POST", b"PUT", b"PATCH"):
            tail += (b"content-length: ", b"%d" % len(body), b"\r\n")
        tail += (b"\r\n", body)
        # The request line, then the header lines and the tail in one call.
        self.head = b"%s %s HTTP/1.1\r\n%s" % (
            request.method,
            request.target,
            header_block(request.headers, dropped, None, *tail),
        )
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
        connection.send(self, self.head, self.request.method == b"HEAD")

    # -- what the replica's connection reports --------------------------------

    def response_head(
        self, connection: Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.status = status
        request = self.request
        if status == 101:
            if request.upgrade is None:
                connection.close()  # a 101 nobody asked for
                self._answer(502, b"upstream protocol error\n")
                return
            self._done()
            self.begin_tunnel(connection, headers)
            return
        self.begin_relay(connection, status, headers, request.keep_alive, request.method == b"HEAD")

    def response_whole(self, connection: Connection, status: int, data: bytes) -> bool:
        """The replica's whole response, its head passed on as it came."""
        if not self.request.keep_alive:
            return False  # the general path adds "connection: close"
        self.status = status
        client = self.client
        client.write(data)
        self.inbound.pool.release(connection)
        self._done()
        client.finish(True)
        return True

    def response_end(self, connection: Connection) -> None:
        self.end_relay()
        self.inbound.pool.release(connection)
        self._done()
        self.client.finish(self.request.keep_alive)

    def response_lost(self, connection: Connection) -> None:
        if self.cut_relay(connection):
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
        inbound = self.inbound
        duration = inbound.clock() - self.started
        telemetry = inbound.telemetry
        if telemetry.spans is None and telemetry.access_log is None:
            # Counters only: the series is all record() would touch.
            self.series.finish(self.status, duration)
            return
        route = self.route
        telemetry.record(
            self.series, "server", self.source, inbound.service,
            route.name if route is not None else "none", self.request.method,
            self.request.target, self.status, self.start_wall, duration, self.traceparent,
            self.parent_id,
        )  # fmt: skip
