"""The ingress gateway as ``dirigent up`` runs it: listener, identity, keys and their refresh.

What ``mesh.gateway`` configures (:class:`~dirigent.mesh.config.GatewaySpec`)
is served by a :class:`~dirigent.mesh.gateway.Gateway` whose requests go out
through an outbound proxy of their own with the identity ``gateway``: they
reach a service through its inbound listeners like any caller's, so mTLS,
authorization (``from: [gateway]``), faults and metrics apply to them.

The issuer's keys are read from ``jwks_file`` at start and again on every
``dirigent apply``, or fetched from ``jwks_url`` at start and every
:data:`JWKS_REFRESH` seconds after (sooner after a failed fetch); a failed
fetch keeps the keys held so far, as Envoy's remote JWKS cache does.

A change of the gateway's routes or token rule applies from the next request
on; its address, and whether there is a gateway at all, are read at start.
This module must never decide about a request: the gateway and the proxy do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from pathlib import Path

from dirigent.errors import ManifestError
from dirigent.mesh.config import GatewaySpec, MeshPolicy
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.gateway import Gateway, Jwks
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.tls import ServiceTls

#: seconds between fetches of a JWKS URL (Envoy caches remote JWKS for 5 minutes)
JWKS_REFRESH = 300.0
#: seconds before another try after a fetch failed
JWKS_RETRY = 5.0


class Ingress:
    """One gateway listener and the proxy behind it."""

    def __init__(
        self,
        spec: GatewaySpec,
        policy: MeshPolicy,
        endpoints: EndpointTable,
        tls: ServiceTls,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        rng: random.Random,
        telemetry: Telemetry,
        source: str,
    ) -> None:
        self.spec = spec
        self.proxy = Proxy(
            policy, endpoints, clock=clock, rng=rng, source=source, tls=tls,
            telemetry=telemetry, wall=wall,
        )  # fmt: skip
        self.jwks = Jwks()
        self.gateway = Gateway((), self.proxy, jwks=self.jwks, wall=wall)
        self._configure(spec)
        self._server: asyncio.Server | None = None
        self._refresh: asyncio.Task[None] | None = None
        #: the last failure to fetch the JWKS URL, for ``describe``
        self.jwks_problem: str | None = None

    async def start(self) -> None:
        jwt = self.spec.jwt
        if jwt is not None and jwt.jwks_url is not None:
            await self._fetch(jwt.jwks_url)
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_loop())
        self._server = await self.gateway.listen(self.spec.host, self.spec.port)

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self._server is not None:
            self._server.close()
        self.proxy.close()

    @property
    def url(self) -> str | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def set_policy(self, policy: MeshPolicy) -> None:
        """The new policy for the proxy, and the new routes and token rule for the gateway."""
        self.proxy.set_policy(policy)
        if policy.gateway is not None:
            self._configure(policy.gateway)
            self.spec = policy.gateway

    def _configure(self, spec: GatewaySpec) -> None:
        jwt = spec.jwt
        if jwt is not None and jwt.jwks_file is not None:
            self._load_file(Path(jwt.jwks_file))
        self.gateway.configure(
            spec.routes,
            jwt.rule if jwt is not None else None,
            require=jwt.require if jwt is not None else True,
        )

    def _load_file(self, path: Path) -> None:
        try:
            self.jwks.load_file(path)
        except (OSError, ValueError) as exc:
            raise ManifestError(f"mesh.gateway.jwt.jwks_file: cannot load {path}: {exc}") from exc

    async def _fetch(self, url: str) -> bool:
        try:
            await self.jwks.fetch(url)
        except (OSError, ValueError) as exc:  # URLError is an OSError; bad JSON a ValueError
            self.jwks_problem = f"{url}: {exc}"
            return False
        self.jwks_problem = None
        return True

    async def _refresh_loop(self) -> None:
        ok = self.jwks_problem is None
        while True:
            await asyncio.sleep(JWKS_REFRESH if ok else JWKS_RETRY)
            jwt = self.spec.jwt
            if jwt is None or jwt.jwks_url is None:
                return  # the gateway no longer fetches keys
            ok = await self._fetch(jwt.jwks_url)
