"""The manifest's ``mesh`` section: traffic policy and security, read into a MeshPolicy.

```yaml
mesh:
  mtls: STRICT                        # or {mode: STRICT, services: {legacy: PERMISSIVE}}
  routes: {...}                       # see dirigent.mesh.section_routes
  destinations:
    payments:
      # ROUND_ROBIN | LEAST_REQUEST | {consistent_hash: {header: x-user}}
      load_balancer: LEAST_REQUEST
      connection_pool: {max_connections: 100, max_pending: 10, max_requests: 200, max_retries: 3}
      outlier_detection: {consecutive_5xx: 5, interval: 10, base_ejection_time: 30,
                          max_ejection_percent: 50}
      retry_budget: {percent: 20, min_concurrency: 3}
      subsets: {v1: {version: v1}, v2: {version: v2}}
  gateway: {...}                      # see dirigent.mesh.section_gateway
  authorization:
    payments:
      default: DENY                   # what happens when no policy applies
      policies:
        - name: orders-may-charge
          action: ALLOW
          rules: [{from: [orders], methods: [POST], paths: [/charge, /refund/*]}]
```

Wire it into the loader with ``load_manifest(path, sections=MESH_SECTIONS)``;
the :class:`~dirigent.mesh.config.MeshPolicy` lands in
``manifest.extensions["mesh"]``. Errors are located like the rest of the
manifest (``dirigent.yaml:14: mesh.routes.payments.retries.attempts: expected
an integer >= 0``).

This module must never raise on a user's mistake, nor read anything but the
node it is given. Service names are checked for form only: whether they name
services of the manifest is for whoever holds the whole manifest to check
(see :func:`unknown_services`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import TypeVar

from yaml.nodes import MappingNode, Node

from dirigent.manifest.loader import SectionParser
from dirigent.manifest.reader import Fields, Reader, line_of
from dirigent.mesh.config import (
    AccessPolicy,
    AccessRule,
    DestinationPolicy,
    GatewaySpec,
    HttpRoute,
    MeshPolicy,
    MtlsMode,
    ServiceAccess,
)
from dirigent.mesh.policy.authz import Action
from dirigent.mesh.policy.balance import Algorithm, LoadBalancer
from dirigent.mesh.policy.breaker import ConnectionPool
from dirigent.mesh.policy.outlier import OutlierDetection
from dirigent.mesh.policy.retry import RetryBudget
from dirigent.mesh.section_gateway import read_gateway
from dirigent.mesh.section_routes import read_routes
from dirigent.mesh.section_values import (
    NAME,
    header_name,
    key_name,
    name,
    optional,
    percent,
    required,
    strings,
    text,
)

MESH_KEYS = ("mtls", "routes", "destinations", "authorization", "gateway")
DESTINATION_KEYS = (
    "load_balancer", "connection_pool", "outlier_detection", "retry_budget", "subsets",
)  # fmt: skip
POOL_KEYS = (
    "max_connections", "max_pending", "max_requests", "max_retries",
    "max_requests_per_connection",
)  # fmt: skip
OUTLIER_KEYS = (
    "consecutive_5xx", "consecutive_gateway_errors", "interval", "base_ejection_time",
    "max_ejection_time", "max_ejection_percent",
)  # fmt: skip
MODES = tuple(mode.value for mode in MtlsMode)
ACTIONS = tuple(action.value for action in Action)
T = TypeVar("T")
_Read = Callable[[Node, str], T | None]
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")


def read_mesh(reader: Reader, node: Node, path: str) -> MeshPolicy | None:
    """Read the ``mesh`` section; records every problem and returns None if there were any."""
    before = len(reader.problems)
    fields = reader.fields(node, path, MESH_KEYS)
    if fields is None:
        return None
    mode: MtlsMode = MtlsMode.PERMISSIVE
    per_service: Mapping[str, MtlsMode] = MappingProxyType({})
    if (mtls_node := fields.get("mtls")) is not None:
        mode, per_service = _mtls(reader, mtls_node, fields.at("mtls"))
    destinations: Mapping[str, DestinationPolicy] = MappingProxyType({})
    if (destinations_node := fields.get("destinations")) is not None:
        destinations = _destinations(reader, destinations_node, fields.at("destinations"))
    subsets = {service: policy.subsets for service, policy in destinations.items()}
    routes: Mapping[str, tuple[HttpRoute, ...]] = MappingProxyType({})
    if (routes_node := fields.get("routes")) is not None:
        routes = read_routes(reader, routes_node, fields.at("routes"), subsets)
    access: Mapping[str, ServiceAccess] = MappingProxyType({})
    if (access_node := fields.get("authorization")) is not None:
        access = _authorization(reader, access_node, fields.at("authorization"))
    gateway = _gateway(reader, fields)
    if len(reader.problems) > before:
        return None
    return MeshPolicy(
        mtls=mode, mtls_services=per_service, routes=routes, destinations=destinations,
        access=access, gateway=gateway,
    )  # fmt: skip


def _gateway(reader: Reader, fields: Fields) -> GatewaySpec | None:
    """``mesh.gateway`` (see :mod:`dirigent.mesh.section_gateway`), None when absent."""
    node = fields.get("gateway")
    return None if node is None else read_gateway(reader, node, fields.at("gateway"))


#: pass to ``load_manifest(..., sections=MESH_SECTIONS)`` to read the ``mesh`` section
MESH_SECTIONS: Mapping[str, SectionParser] = MappingProxyType({"mesh": read_mesh})


def unknown_services(policy: MeshPolicy, services: Collection[str]) -> list[str]:
    """Services the mesh section names that the manifest does not declare, sorted."""
    named = {*policy.mtls_services, *policy.routes, *policy.destinations, *policy.access}
    if policy.gateway is not None:
        named |= {route.service for route in policy.gateway.routes}
    return sorted(named - set(services))


def _mtls(reader: Reader, node: Node, path: str) -> tuple[MtlsMode, Mapping[str, MtlsMode]]:
    if not isinstance(node, MappingNode):
        chosen = reader.choice(node, path, MODES)
        return MtlsMode(chosen or "PERMISSIVE"), MappingProxyType({})
    fields = reader.fields(node, path, ("mode", "services"))
    if fields is None:
        return MtlsMode.PERMISSIVE, MappingProxyType({})
    mode = optional(fields, "mode", lambda n, at: _mode(reader, n, at), MtlsMode.PERMISSIVE)
    per_service: dict[str, MtlsMode] = {}
    if (services_node := fields.get("services")) is not None:
        service_fields = reader.fields(services_node, fields.at("services"), None)
        for service, mode_node in service_fields.nodes.items() if service_fields else ():
            at = f"{fields.at('services')}.{service}"
            if key_name(reader, service, mode_node, at) and (
                service_mode := _mode(reader, mode_node, at)
            ):
                per_service[service] = service_mode
    return mode, MappingProxyType(per_service)


def _mode(reader: Reader, node: Node, path: str) -> MtlsMode | None:
    chosen = reader.choice(node, path, MODES)
    return None if chosen is None else MtlsMode(chosen)


def _destinations(reader: Reader, node: Node, path: str) -> Mapping[str, DestinationPolicy]:
    out: dict[str, DestinationPolicy] = {}
    fields = reader.fields(node, path, None)
    for service, service_node in fields.nodes.items() if fields else ():
        at = f"{path}.{service}"
        if not key_name(reader, service, service_node, at):
            continue
        policy = _destination(reader, service_node, at)
        if policy is not None:
            out[service] = policy
    return MappingProxyType(out)


def _destination(reader: Reader, node: Node, path: str) -> DestinationPolicy | None:
    fields = reader.fields(node, path, DESTINATION_KEYS)
    if fields is None:
        return None
    default = DestinationPolicy()
    return DestinationPolicy(
        load_balancer=optional(
            fields, "load_balancer", lambda n, at: _balancer(reader, n, at), default.load_balancer
        ),
        connection_pool=optional(
            fields, "connection_pool", lambda n, at: _pool(reader, n, at), default.connection_pool
        ),
        outlier_detection=optional(
            fields, "outlier_detection", lambda n, at: _outlier(reader, n, at), None
        ),
        retry_budget=optional(
            fields, "retry_budget", lambda n, at: _budget(reader, n, at), default.retry_budget
        ),
        subsets=optional(fields, "subsets", lambda n, at: _subsets(reader, n, at), default.subsets),
    )


def _balancer(reader: Reader, node: Node, path: str) -> LoadBalancer | None:
    if not isinstance(node, MappingNode):
        simple = reader.choice(node, path, ("ROUND_ROBIN", "LEAST_REQUEST"))
        return None if simple is None else LoadBalancer(Algorithm(simple))
    fields = reader.fields(node, path, ("consistent_hash",))
    hash_node = fields.get("consistent_hash") if fields else None
    if fields is None or hash_node is None:
        if fields is not None:
            reader.error(fields.line, path, "expected ROUND_ROBIN, LEAST_REQUEST or "
                         "{consistent_hash: {header: NAME}}")  # fmt: skip
        return None
    hash_fields = reader.fields(hash_node, fields.at("consistent_hash"), ("header",))
    if hash_fields is None:
        return None
    header_node = hash_fields.get("header")
    if header_node is None:
        reader.error(hash_fields.line, hash_fields.at("header"), "required key is missing")
        return None
    header = reader.string(header_node, hash_fields.at("header"))
    if header is None:
        return None
    checked = header_name(reader, header, header_node, hash_fields.at("header"))
    return None if checked is None else LoadBalancer(Algorithm.RING_HASH, checked)


def _count(reader: Reader, minimum: int) -> _Read[int]:
    return lambda n, at: reader.integer(n, at, minimum=minimum)


def _seconds(reader: Reader) -> _Read[float]:
    return lambda n, at: reader.number(n, at, positive=True)


def _pool(reader: Reader, node: Node, path: str) -> ConnectionPool | None:
    fields = reader.fields(node, path, POOL_KEYS)
    if fields is None:
        return None
    d = ConnectionPool()
    return ConnectionPool(
        max_connections=optional(fields, "max_connections", _count(reader, 1), d.max_connections),
        max_pending=optional(fields, "max_pending", _count(reader, 0), d.max_pending),
        max_requests=optional(fields, "max_requests", _count(reader, 1), d.max_requests),
        max_retries=optional(fields, "max_retries", _count(reader, 0), d.max_retries),
        max_requests_per_connection=optional(
            fields, "max_requests_per_connection", _count(reader, 0), 0
        ),
    )


def _outlier(reader: Reader, node: Node, path: str) -> OutlierDetection | None:
    fields = reader.fields(node, path, OUTLIER_KEYS)
    if fields is None:
        return None
    d = OutlierDetection()
    detection = OutlierDetection(
        consecutive_5xx=optional(fields, "consecutive_5xx", _count(reader, 0), d.consecutive_5xx),
        consecutive_gateway_errors=optional(
            fields, "consecutive_gateway_errors", _count(reader, 0), 0
        ),
        interval=optional(fields, "interval", _seconds(reader), d.interval),
        base_ejection_time=optional(
            fields, "base_ejection_time", _seconds(reader), d.base_ejection_time
        ),
        max_ejection_time=optional(
            fields, "max_ejection_time", _seconds(reader), d.max_ejection_time
        ),
        max_ejection_percent=optional(
            fields,
            "max_ejection_percent",
            lambda n, at: percent(reader, n, at),
            d.max_ejection_percent,
        ),
    )
    if detection.max_ejection_time < detection.base_ejection_time and "max_ejection_time" in (
        fields.nodes
    ):
        reader.error(
            line_of(fields.nodes["max_ejection_time"]),
            fields.at("max_ejection_time"),
            f"expected a number >= base_ejection_time ({detection.base_ejection_time:g})",
        )
    return detection


def _budget(reader: Reader, node: Node, path: str) -> RetryBudget | None:
    fields = reader.fields(node, path, ("percent", "min_concurrency"))
    if fields is None:
        return None
    d = RetryBudget()
    return RetryBudget(
        percent=optional(fields, "percent", lambda n, at: percent(reader, n, at), d.percent),
        min_concurrency=optional(fields, "min_concurrency", _count(reader, 0), d.min_concurrency),
    )


def _subsets(reader: Reader, node: Node, path: str) -> Mapping[str, Mapping[str, str]] | None:
    fields = reader.fields(node, path, None)
    if fields is None:
        return None
    out: dict[str, Mapping[str, str]] = {}
    for subset, labels_node in fields.nodes.items():
        at = fields.at(subset)
        if not key_name(reader, subset, labels_node, at):
            continue
        labels_fields = reader.fields(labels_node, at, None)
        if labels_fields is None:
            continue
        labels = {
            key: value
            for key, value_node in labels_fields.nodes.items()
            if (value := text(reader, value_node, labels_fields.at(key))) is not None
        }
        if not labels:
            reader.error(labels_fields.line, at, "expected at least one label, e.g. {version: v2}")
        out[subset] = MappingProxyType(labels)
    return MappingProxyType(out)


def _authorization(reader: Reader, node: Node, path: str) -> Mapping[str, ServiceAccess]:
    out: dict[str, ServiceAccess] = {}
    fields = reader.fields(node, path, None)
    for service, service_node in fields.nodes.items() if fields else ():
        at = f"{path}.{service}"
        if key_name(reader, service, service_node, at):
            access = _service_access(reader, service_node, at)
            if access is not None:
                out[service] = access
    return MappingProxyType(out)


def _service_access(reader: Reader, node: Node, path: str) -> ServiceAccess | None:
    fields = reader.fields(node, path, ("default", "policies"))
    if fields is None:
        return None
    default = optional(
        fields, "default", lambda n, at: reader.choice(n, at, ACTIONS), Action.ALLOW.value
    )
    policies: list[AccessPolicy] = []
    seen: dict[str, int] = {}
    if (policies_node := fields.get("policies")) is not None:
        for at, item in reader.items(policies_node, fields.at("policies")) or ():
            policy = _policy(reader, item, at)
            if policy is None:
                continue
            if policy.name in seen:
                first = seen[policy.name]
                message = f"duplicate policy name (first used on line {first})"
                reader.error(line_of(item), f"{at}.name", message)
                continue
            seen[policy.name] = line_of(item)
            policies.append(policy)
    return ServiceAccess(tuple(policies), default_deny=default == Action.DENY.value)


def _policy(reader: Reader, node: Node, path: str) -> AccessPolicy | None:
    fields = reader.fields(node, path, ("name", "action", "rules"))
    if fields is None:
        return None
    policy_name = required(fields, reader, "name", lambda n, at: name(reader, n, at))
    action = required(fields, reader, "action", lambda n, at: reader.choice(n, at, ACTIONS))
    rules: list[AccessRule] = []
    if (rules_node := fields.get("rules")) is not None:
        for at, item in reader.items(rules_node, fields.at("rules")) or ():
            rule = _access_rule(reader, item, at)
            if rule is not None:
                rules.append(rule)
    if policy_name is None or action is None:
        return None
    return AccessPolicy(policy_name, Action(action), tuple(rules))


def _access_rule(reader: Reader, node: Node, path: str) -> AccessRule | None:
    fields = reader.fields(node, path, ("from", "methods", "paths"))
    if fields is None:
        return None

    def listed(n: Node, at: str) -> tuple[str, ...] | None:
        return strings(reader, n, at)

    nothing: tuple[str, ...] = ()

    methods = optional(fields, "methods", listed, nothing)
    for i, method in enumerate(methods):
        if method not in _METHODS and method != "*":
            reader.error(
                line_of(fields.nodes["methods"]),
                f"{fields.at('methods')}[{i}]",
                f"expected an HTTP method in capitals ({', '.join(_METHODS)}) or '*'",
            )
    paths = optional(fields, "paths", listed, nothing)
    for i, value in enumerate(paths):
        if not value.startswith(("/", "*")):
            reader.error(
                line_of(fields.nodes["paths"]),
                f"{fields.at('paths')}[{i}]",
                "expected a path starting with '/' (or '*' for a suffix match)",
            )
    sources = optional(fields, "from", listed, nothing)
    for i, source in enumerate(sources):
        if source != "*" and "://" not in source and not NAME.match(source):
            reader.error(
                line_of(fields.nodes["from"]),
                f"{fields.at('from')}[{i}]",
                "expected a service name, a spiffe:// identity or '*'",
            )
    return AccessRule(sources=sources, methods=methods, paths=paths)
