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

Every decision is made by :mod:`dirigent.mesh.policy`; this module must
never decide anything itself, and reads the clock and draws randomness only
through what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from dirigent.mesh import http1
from dirigent.mesh.config import HttpRoute, MeshPolicy, MtlsMode
from dirigent.mesh.listener import Listener
from dirigent.mesh.policy import authz, fault, trace
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.relay import relay, reply
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.tls import ServiceTls
from dirigent.mesh.upstream import Connection, Pool

#: the largest request body held before it goes to the replica
MAX_BODY = 8 * 2**20
#: the source label of a caller without an identity (plain text)
UNKNOWN_SOURCE = "unknown"
_XFCC = b"x-forwarded-client-cert"
_TRACEPARENT = b"traceparent"


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
        self._clock = clock
        self._wall = wall
        self._rng = rng
        self.telemetry = telemetry or Telemetry()
        self._pool = Pool()
        self._identity = authz.service_identity(app, service).encode()
        self.set_policy(policy)
        self.listener = Listener(self._serve, mode=self._mode, tls=tls)

    def set_policy(self, policy: MeshPolicy) -> None:
        """Swap the policy; a request in progress keeps the one it started with."""
        access = policy.access_for(self.service)
        # Resolved once per policy, not per request: service names become SPIFFE IDs.
        self._access = (access.resolved(self.app), access.default_deny)
        self.policy = policy

    def _mode(self) -> MtlsMode:
        return self.policy.mtls_mode(self.service)

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> Listener:
        return await self.listener.start(host, port)

    def close(self) -> None:
        self.listener.close()
        self._pool.close()

    async def _serve(
        self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter, principal: str | None
    ) -> None:
        reader = http1.MessageReader(stream, responses=False)
        try:
            while (request := await reader.head()) is not None:
                body = await reader.whole_body(request, MAX_BODY)
                await self._handle(request, body, writer, principal)
                if not request.keep_alive:
                    break
        except http1.ProtocolError:
            with contextlib.suppress(ConnectionError):
                await reply(writer, 400, b"bad request\n", keep_alive=False)
        except ConnectionError:
            pass  # the caller went away; nothing to answer
        finally:
            writer.close()

    async def _handle(
        self,
        request: http1.Message,
        body: bytes,
        writer: asyncio.StreamWriter,
        principal: str | None,
    ) -> None:
        started, start_wall = self._clock(), self._wall()
        policy = self.policy
        method, target = request.method, request.target
        head = RequestHead(method.decode(), target.decode("latin-1"), _header_dict(request))
        route = first_match(policy.routes_for(self.service), head)
        route_name = route.name if route is not None else "none"
        source = principal or UNKNOWN_SOURCE
        series = self.telemetry.metrics.series("destination", source, self.service, route_name)
        series.start()
        span = trace.hop(request.header(_TRACEPARENT), self._rng.getrandbits)
        status = 500
        try:
            status = await self._answer(
                request=request,
                body=body,
                writer=writer,
                principal=principal,
                route=route,
                span=span,
                head=head,
            )
        finally:
            self.telemetry.record(
                series=series, kind="server", source=source, destination=self.service,
                route=route_name, method=method, path=target, status=status, start=start_wall,
                duration=self._clock() - started, trace_id=span.trace_id, span_id=span.span_id,
                parent_id=span.parent_id,
            )  # fmt: skip

    async def _answer(
        self,
        *,
        request: http1.Message,
        body: bytes,
        writer: asyncio.StreamWriter,
        principal: str | None,
        route: HttpRoute | None,
        span: trace.Hop,
        head: RequestHead,
    ) -> int:
        keep = request.keep_alive
        policies, default_deny = self._access
        decision = authz.authorize(
            policies, authz.Request(principal, head.method, head.path), default_deny=default_deny
        )
        if not decision.allowed:
            extra = [(b"x-dirigent-policy", decision.policy.encode())]
            text = decision.reason.encode() + b"\n"
            await reply(writer, 403, text, keep_alive=keep, headers=extra)
            return 403
        plan = fault.plan(route.fault if route is not None else None, self._rng.random)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.abort is not None:
            await reply(writer, plan.abort, b"fault filter abort\n", keep_alive=keep)
            return plan.abort
        headers = [
            (name, value)
            for name, value in http1.forwardable(request.headers)
            if name not in (_XFCC, _TRACEPARENT)
        ]
        headers.append((_TRACEPARENT, span.traceparent))
        if principal is not None:
            headers.append((_XFCC, b"By=" + self._identity + b";URI=" + principal.encode()))
        return await self._forward(request, body, headers, writer)

    async def _forward(
        self,
        request: http1.Message,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        writer: asyncio.StreamWriter,
    ) -> int:
        keep = request.keep_alive
        payload = http1.request_head(request.method, request.target, headers, len(body)) + body
        host, port = self.replica
        for fresh in (False, True):
            connection: Connection | None = None
            try:
                connection = await self._pool.acquire(host, port)
                connection.writer.write(payload)
                await connection.writer.drain()
                response = await connection.reader.head()
            except OSError:
                response = None
            except http1.ProtocolError:
                response = None
            if response is not None and connection is not None:
                await relay(
                    self._pool, connection, response, http1.forwardable(response.headers), writer,
                    head_only=request.method == b"HEAD", keep_alive=keep,
                )  # fmt: skip
                return response.status
            if connection is not None:
                connection.close()
            # An idle connection the replica closed meanwhile is not the replica
            # failing: try once more on a new one.
            if fresh or connection is None or not connection.reused:
                break
        await reply(writer, 503, b"upstream connect error\n", keep_alive=keep)
        return 503


def _header_dict(request: http1.Message) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
