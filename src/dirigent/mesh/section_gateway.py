"""Read ``mesh.gateway``: the ingress gateway's listener, routes and JWT check.

```yaml
mesh:
  gateway:
    port: 8080                     # 0 picks a free port (dirigent status shows it)
    host: 127.0.0.1                # the address to listen on; 0.0.0.0 for every one
    routes:                        # longest prefix first; a route naming a host first
      - {prefix: /api/, service: orders}
      - {prefix: /, service: web, host: shop.example}
    jwt:                           # optional; without it the gateway checks no token
      issuer: https://auth.example
      audiences: [shop]
      jwks_file: jwks.json         # or jwks_url: https://auth.example/.well-known/jwks.json
      require: true                # false: a request without a token passes as anonymous
```

Requests that pass go through the mesh as the caller ``gateway``, so the
services' mTLS and authorization policies apply to them (``from: [gateway]``).

This module must never raise on a user's mistake, nor read anything but the
node it is given: a ``jwks_file`` is resolved against the manifest's folder
here but read by the mesh when it starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import PurePath

from yaml.nodes import Node

from dirigent.manifest.reader import Reader, line_of
from dirigent.mesh.config import GatewayJwt, GatewayRoute, GatewaySpec
from dirigent.mesh.policy.jwt import JwtRule
from dirigent.mesh.section_values import name, optional, required, strings

GATEWAY_KEYS = ("port", "host", "routes", "jwt")
ROUTE_KEYS = ("prefix", "service", "host")
JWT_KEYS = ("issuer", "audiences", "jwks_file", "jwks_url", "require")
_MAX_PORT = 65535


def read_gateway(reader: Reader, node: Node, path: str) -> GatewaySpec | None:
    """The gateway, or None after recording its problems."""
    before = len(reader.problems)
    fields = reader.fields(node, path, GATEWAY_KEYS)
    if fields is None:
        return None
    port = required(fields, reader, "port", lambda n, at: _port(reader, n, at))
    host = optional(fields, "host", lambda n, at: _address(reader, n, at), "127.0.0.1")
    routes = required(fields, reader, "routes", lambda n, at: _routes(reader, n, at))
    jwt = optional(fields, "jwt", lambda n, at: _jwt(reader, n, at), None)
    if port is None or routes is None or len(reader.problems) > before:
        return None
    return GatewaySpec(port=port, routes=routes, host=host, jwt=jwt)


def _port(reader: Reader, node: Node, path: str) -> int | None:
    port = reader.integer(node, path, minimum=0)
    if port is not None and port > _MAX_PORT:
        reader.error(line_of(node), path, f"expected a port from 0 to {_MAX_PORT}")
        return None
    return port


def _address(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.string(node, path)
    if value is None:
        return None
    try:
        # An address, not a name: the gateway must not depend on resolving one.
        return str(ipaddress.ip_address(value))
    except ValueError:
        reader.error(line_of(node), path, "expected an IP address, e.g. 127.0.0.1 or 0.0.0.0")
        return None


def _routes(reader: Reader, node: Node, path: str) -> tuple[GatewayRoute, ...] | None:
    items = reader.items(node, path)
    if items is None:
        return None
    if not items:
        reader.error(line_of(node), path, "expected at least one route")
        return None
    routes: list[GatewayRoute] = []
    seen: dict[tuple[str | None, str], int] = {}
    for at, item in items:
        route = _route(reader, item, at)
        if route is None:
            continue
        key = (route.host, route.prefix)
        if key in seen:
            message = f"duplicate route for this host and prefix (first on line {seen[key]})"
            reader.error(line_of(item), f"{at}.prefix", message)
            continue
        seen[key] = line_of(item)
        routes.append(route)
    return tuple(routes)


def _route(reader: Reader, node: Node, path: str) -> GatewayRoute | None:
    fields = reader.fields(node, path, ROUTE_KEYS)
    if fields is None:
        return None
    prefix = required(fields, reader, "prefix", lambda n, at: _prefix(reader, n, at))
    service = required(fields, reader, "service", lambda n, at: name(reader, n, at))
    host = optional(fields, "host", lambda n, at: _host(reader, n, at), None)
    if prefix is None or service is None:
        return None
    return GatewayRoute(prefix, service, host)


def _prefix(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.string(node, path)
    if value is not None and not value.startswith("/"):
        reader.error(line_of(node), path, "expected a path prefix starting with '/'")
        return None
    return value


def _host(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.string(node, path)
    if value is not None and (":" in value or "/" in value or " " in value):
        reader.error(line_of(node), path, "expected a host name without port or path")
        return None
    # Hosts are compared lowercased, as the gateway reads them from requests.
    return None if value is None else value.lower()


def _jwt(reader: Reader, node: Node, path: str) -> GatewayJwt | None:
    fields = reader.fields(node, path, JWT_KEYS)
    if fields is None:
        return None
    issuer = required(fields, reader, "issuer", reader.string)
    nothing: tuple[str, ...] = ()
    audiences = optional(fields, "audiences", lambda n, at: strings(reader, n, at), nothing)
    jwks_file = optional(fields, "jwks_file", reader.string, None)
    jwks_url = optional(fields, "jwks_url", lambda n, at: _url(reader, n, at), None)
    require = optional(fields, "require", lambda n, at: _boolean(reader, n, at), True)
    # Judged by the keys given, so a bad value is reported once, for itself.
    sources = len({"jwks_file", "jwks_url"} & fields.nodes.keys())
    if sources != 1:
        given = "both" if sources else "neither"
        reader.error(fields.line, path, f"expected one of jwks_file and jwks_url ({given} given)")
        return None
    if issuer is None or (jwks_file is None and jwks_url is None):
        return None
    if jwks_file is not None:
        jwks_file = str(PurePath(reader.source).parent / jwks_file)
    return GatewayJwt(JwtRule(issuer, audiences), jwks_file, jwks_url, require)


def _url(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.string(node, path)
    if value is not None and not value.startswith(("http://", "https://")):
        reader.error(line_of(node), path, "expected an http:// or https:// URL")
        return None
    return value


def _boolean(reader: Reader, node: Node, path: str) -> bool | None:
    value = reader.scalar(node)
    if not isinstance(value, bool):
        reader.error(line_of(node), path, "expected true or false")
        return None
    return value
