"""The mesh's traffic and security policy: what the manifest's ``mesh`` section says.

A :class:`MeshPolicy` is built by :mod:`dirigent.mesh.section` from
``dirigent.yaml`` and read by the data plane; it is made only of the pure
policy types of :mod:`dirigent.mesh.policy`, so a listener needs nothing else
to decide a request. It mirrors Istio's resources: ``routes`` are
VirtualServices, ``destinations`` DestinationRules, ``mtls`` a
PeerAuthentication and ``authorization`` AuthorizationPolicies.

This module must never do I/O; it only holds and looks up policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from dirigent.mesh.policy.authz import Action, AuthorizationPolicy, Rule, service_identity
from dirigent.mesh.policy.balance import LoadBalancer
from dirigent.mesh.policy.breaker import ConnectionPool
from dirigent.mesh.policy.fault import Fault
from dirigent.mesh.policy.headers import HeaderRewrite
from dirigent.mesh.policy.jwt import JwtRule
from dirigent.mesh.policy.mirror import Mirror
from dirigent.mesh.policy.outlier import OutlierDetection
from dirigent.mesh.policy.ratelimit import TokenBucket
from dirigent.mesh.policy.retry import RetryBudget, RetryPolicy
from dirigent.mesh.policy.routing import RouteMatch
from dirigent.mesh.policy.split import Destination, Split


class MtlsMode(Enum):
    """Istio's PeerAuthentication modes for a service's inbound listener."""

    #: only mutual TLS with a certificate from the mesh's CA
    STRICT = "STRICT"
    #: mutual TLS or plain text (plain-text callers have no identity)
    PERMISSIVE = "PERMISSIVE"
    #: plain text only
    DISABLE = "DISABLE"


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One rule of a service's routes: when it applies and what it does to a request."""

    name: str
    #: any one of these must hold; empty for the catch-all
    matches: tuple[RouteMatch, ...]
    split: Split
    #: the whole request, retries included; None waits as long as the caller does
    timeout: float | None = None
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    fault: Fault | None = None
    headers: HeaderRewrite = field(default_factory=HeaderRewrite)
    rate_limit: TokenBucket | None = None
    #: a copy of (a share of) the requests goes there too, its answer discarded
    mirror: Mirror | None = None


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """How traffic to one service is balanced, limited and watched (a DestinationRule)."""

    load_balancer: LoadBalancer = field(default_factory=LoadBalancer)
    connection_pool: ConnectionPool = field(default_factory=ConnectionPool)
    #: None: outlier detection is off, as in Istio when the field is absent
    outlier_detection: OutlierDetection | None = None
    retry_budget: RetryBudget = field(default_factory=RetryBudget)
    #: subset name -> the endpoint labels it selects
    subsets: Mapping[str, Mapping[str, str]] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """An authorization rule as written: ``sources`` are service names or SPIFFE IDs."""

    sources: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def resolve(self, app: str) -> Rule:
        """The rule with each service name turned into that service's identity."""
        return Rule(
            principals=tuple(_principal(app, source) for source in self.sources),
            methods=self.methods,
            paths=self.paths,
        )


def _principal(app: str, source: str) -> str:
    # A bare '*' means any authenticated caller; a name without a scheme is a
    # service of this app; anything else is a SPIFFE ID (possibly wildcarded).
    if source == "*" or "://" in source:
        return source
    return service_identity(app, source)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The written form of an authorization policy; see :meth:`ServiceAccess.policies`."""

    name: str
    action: Action
    rules: tuple[AccessRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """Who may call one service: its policies, DENY first, and the default."""

    policies: tuple[AccessPolicy, ...] = ()
    default_deny: bool = False

    def resolved(self, app: str) -> tuple[AuthorizationPolicy, ...]:
        return tuple(
            AuthorizationPolicy(
                access.name,
                access.action,
                tuple(rule.resolve(app) for rule in access.rules),
            )
            for access in self.policies
        )


@dataclass(frozen=True, slots=True)
class MeshPolicy:
    """Everything the ``mesh`` section says; services it does not name get the defaults."""

    mtls: MtlsMode = MtlsMode.PERMISSIVE
    mtls_services: Mapping[str, MtlsMode] = field(default_factory=_empty)
    #: service -> its routes, first match wins; the last is the catch-all
    routes: Mapping[str, tuple[HttpRoute, ...]] = field(default_factory=_empty)
    destinations: Mapping[str, DestinationPolicy] = field(default_factory=_empty)
    access: Mapping[str, ServiceAccess] = field(default_factory=_empty)
    #: the ingress gateway for outside clients; None: no gateway is run
    gateway: GatewaySpec | None = None

    def mtls_mode(self, service: str) -> MtlsMode:
        return self.mtls_services.get(service, self.mtls)

    def destination(self, service: str) -> DestinationPolicy:
        return self.destinations.get(service, DestinationPolicy())

    def routes_for(self, service: str) -> tuple[HttpRoute, ...]:
        """The service's routes; without any, one catch-all to the whole service."""
        found = self.routes.get(service)
        if found is not None:
            return found
        return (HttpRoute("default", (), Split.of([Destination(service)])),)

    def access_for(self, service: str) -> ServiceAccess:
        return self.access.get(service, ServiceAccess())


# -- the ingress gateway (mesh.gateway) ---------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """Requests under ``prefix`` (and for ``host``, when set) go to ``service``."""

    prefix: str
    service: str
    host: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayJwt:
    """How the gateway checks bearer tokens (Istio's RequestAuthentication).

    Exactly one of ``jwks_file`` (resolved against the manifest's folder) and
    ``jwks_url`` says where the issuer's keys are. With ``require`` false a
    request without a token passes as anonymous; one with a bad token never does.
    """

    rule: JwtRule
    jwks_file: str | None = None
    jwks_url: str | None = None
    require: bool = True


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """The gateway's listener and its routes to services."""

    port: int
    routes: tuple[GatewayRoute, ...]
    host: str = "127.0.0.1"
    jwt: GatewayJwt | None = None
