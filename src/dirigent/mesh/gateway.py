"""The ingress gateway: one listener for clients outside the mesh, with routes to services.

Per request: pick the route whose host (if it names one) and longest path
prefix fit (404 if none); when the gateway checks JWTs, take the bearer
token from ``Authorization`` and validate it with
:mod:`dirigent.mesh.policy.jwt` (401 with ``www-authenticate`` when it is
missing, expired, forged or meant for someone else, as Envoy answers; a
missing one passes when tokens are not required); then hand the request to
the mesh's outbound :class:`~dirigent.mesh.proxy.Proxy`, whose routes,
retries, balancing and mTLS apply as for any caller. The proxy's ``source``
is the gateway's identity. What the gateway answers itself (401, 404) is
counted in the proxy's metrics as from ``source``, on the route ``gateway``.

JWKS come from a file or a URL through :class:`Jwks`, which the shell
refreshes; this module must never decide routing within a service, and
reads the wall clock only through what it is given.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from dirigent.mesh.config import GatewayRoute
from dirigent.mesh.heads import Request
from dirigent.mesh.policy import jwt
from dirigent.mesh.proxy import MAX_BODY, Proxy
from dirigent.mesh.wire import ServerConnection

__all__ = ["Gateway", "GatewayRoute", "Jwks"]

_BEARER = b"bearer "
#: the route label of the answers the gateway gives itself
OWN_ROUTE = "gateway"
#: the destination label of a request no route covers
NO_SERVICE = "none"


class Jwks:
    """The issuer's signing keys, loaded from a file or fetched from a URL."""

    def __init__(self, keys: Mapping[str, jwt.PublicKey] | None = None) -> None:
        self.keys: Mapping[str, jwt.PublicKey] = keys or {}

    def load_document(self, document: Mapping[str, object]) -> None:
        self.keys = jwt.read_jwks(document)

    def load_file(self, path: Path) -> None:
        self.load_document(json.loads(path.read_text()))

    async def fetch(self, url: str, timeout: float = 10.0) -> None:
        """Fetch the JWKS at ``url``; on failure the keys held so far stay in use."""

        def get() -> bytes:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body: bytes = response.read()
                return body

        self.load_document(json.loads(await asyncio.to_thread(get)))


class Gateway:
    def __init__(
        self,
        routes: tuple[GatewayRoute, ...],
        proxy: Proxy,
        *,
        jwt_rule: jwt.JwtRule | None = None,
        jwks: Jwks | None = None,
        require: bool = True,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.proxy = proxy
        self.jwks = jwks or Jwks()
        self._wall = wall
        self.configure(routes, jwt_rule, require=require)

    def configure(
        self,
        routes: tuple[GatewayRoute, ...],
        jwt_rule: jwt.JwtRule | None,
        *,
        require: bool = True,
    ) -> None:
        """New routes and token rule from the next request on; connections stay open."""
        # Longest prefix first, and a route naming a host before one that does not.
        self.routes = tuple(sorted(routes, key=lambda r: (r.host is None, -len(r.prefix))))
        self.jwt_rule = jwt_rule
        self.require = require

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: ServerConnection(self._dispatch, max_body=MAX_BODY), host, port, backlog=1024
        )

    def _dispatch(self, client: ServerConnection, request: Request) -> None:
        keep = request.keep_alive
        route = self._route(request)
        if route is None:
            client.reply(404, b"no route\n", keep_alive=keep)
            self._count(NO_SERVICE, 404)
            return
        if self.jwt_rule is not None:
            problem = self._authenticate(request, self.jwt_rule)
            if problem is not None:
                challenge = b'Bearer realm="dirigent", error="invalid_token"'
                client.reply(
                    401, problem.encode() + b"\n", keep_alive=keep,
                    headers=[(b"www-authenticate", challenge)],
                )  # fmt: skip
                self._count(route.service, 401)
                return
        self.proxy.handle(request, client, route.service, request.target)

    def _count(self, service: str, status: int) -> None:
        # Answered before any upstream was involved: no time worth measuring.
        proxy = self.proxy
        series = proxy.telemetry.metrics.series("source", proxy.source, service, OWN_ROUTE)
        series.start()
        series.finish(status, 0.0)

    def _route(self, request: Request) -> GatewayRoute | None:
        host = (request.host or b"").split(b":", 1)[0].decode("latin-1").lower()
        path = request.target.decode("latin-1")
        for route in self.routes:
            if (route.host is None or route.host == host) and path.startswith(route.prefix):
                return route
        return None

    def _authenticate(self, request: Request, rule: jwt.JwtRule) -> str | None:
        """None when the request carries a valid token; else why it is refused."""
        value = request.header(b"authorization")
        if value is None and not self.require:
            return None  # anonymous, as Istio's RequestAuthentication lets one through
        if value is None or value[: len(_BEARER)].lower() != _BEARER:
            return "Jwt is missing"
        token = value[len(_BEARER) :].strip().decode("latin-1")
        result = jwt.verify(token, rule, self.jwks.keys, self._wall())
        return result.reason if isinstance(result, jwt.Rejected) else None
