"""``mesh.gateway`` loads into a GatewaySpec, and each mistake is located."""

from __future__ import annotations

import textwrap

import pytest

from dirigent.manifest import InvalidManifest, parse_manifest
from dirigent.mesh.config import GatewayRoute, MeshPolicy
from dirigent.mesh.policy.jwt import JwtRule
from dirigent.mesh.section import MESH_SECTIONS, unknown_services


def load(gateway: str, source: str = "dirigent.yaml") -> MeshPolicy:
    text = "app: shop\nmesh:\n  gateway:\n" + textwrap.indent(textwrap.dedent(gateway), "    ")
    policy = parse_manifest(text, source=source, sections=MESH_SECTIONS).extensions["mesh"]
    assert isinstance(policy, MeshPolicy)
    return policy


def problems(gateway: str) -> list[str]:
    with pytest.raises(InvalidManifest) as caught:
        load(gateway)
    return [str(problem) for problem in caught.value.problems]


def test_a_gateway_loads_its_listener_routes_and_token_rule() -> None:
    policy = load(
        """\
        port: 8080
        host: 0.0.0.0
        routes:
          - {prefix: /api/, service: orders}
          - {prefix: /, service: web, host: Shop.Example}
        jwt:
          issuer: https://auth.example
          audiences: [shop]
          jwks_file: keys/jwks.json
          require: false
        """,
        source="/srv/shop/dirigent.yaml",
    )
    gateway = policy.gateway
    assert gateway is not None
    assert (gateway.host, gateway.port) == ("0.0.0.0", 8080)
    assert gateway.routes == (
        GatewayRoute("/api/", "orders"),
        GatewayRoute("/", "web", "shop.example"),
    )
    assert gateway.jwt is not None
    assert gateway.jwt.rule == JwtRule("https://auth.example", ("shop",))
    # Relative to the manifest's folder, wherever dirigent is started from.
    assert gateway.jwt.jwks_file == "/srv/shop/keys/jwks.json"
    assert gateway.jwt.require is False


def test_without_a_gateway_key_there_is_no_gateway_and_tokens_are_required_by_default() -> None:
    assert parse_manifest("app: shop\nmesh: {}\n", sections=MESH_SECTIONS).extensions[
        "mesh"
    ] == MeshPolicy(gateway=None)
    policy = load(
        "port: 0\nroutes: [{prefix: /, service: web}]\n"
        "jwt: {issuer: i, jwks_url: https://auth.example/jwks}\n"
    )
    assert policy.gateway is not None
    assert policy.gateway.host == "127.0.0.1"
    assert policy.gateway.jwt is not None
    assert policy.gateway.jwt.require is True


def test_services_the_gateway_routes_to_must_be_declared() -> None:
    policy = load("port: 0\nroutes: [{prefix: /, service: nowhere}]\n")
    assert unknown_services(policy, ["web"]) == ["nowhere"]


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ("routes: [{prefix: /, service: web}]\n", "dirigent.yaml:3: mesh.gateway.port: "
         "required key is missing"),
        ("port: 70000\nroutes: [{prefix: /, service: web}]\n",
         "dirigent.yaml:4: mesh.gateway.port: expected a port from 0 to 65535"),
        ("port: 0\nhost: localhost\nroutes: [{prefix: /, service: web}]\n",
         "dirigent.yaml:5: mesh.gateway.host: expected an IP address, e.g. 127.0.0.1 or 0.0.0.0"),
        ("port: 0\nroutes: []\n", "dirigent.yaml:5: mesh.gateway.routes: "
         "expected at least one route"),
        ("port: 0\nroutes: [{prefix: api, service: web}]\n",
         "dirigent.yaml:5: mesh.gateway.routes[0].prefix: expected a path prefix starting "
         "with '/'"),
        ("port: 0\nroutes: [{prefix: /, service: Web}]\n",
         "dirigent.yaml:5: mesh.gateway.routes[0].service: expected a lowercase name of "
         "letters, digits and '-' (a DNS label)"),
        ("port: 0\nroutes:\n  - {prefix: /, service: web}\n  - {prefix: /, service: api}\n",
         "dirigent.yaml:7: mesh.gateway.routes[1].prefix: duplicate route for this host and "
         "prefix (first on line 6)"),
        ("port: 0\nroutes: [{prefix: /, service: web}]\njwt: {issuer: i}\n",
         "dirigent.yaml:6: mesh.gateway.jwt: expected one of jwks_file and jwks_url "
         "(neither given)"),
        ("port: 0\nroutes: [{prefix: /, service: web}]\n"
         "jwt: {issuer: i, jwks_file: a.json, jwks_url: 'https://x/j'}\n",
         "dirigent.yaml:6: mesh.gateway.jwt: expected one of jwks_file and jwks_url "
         "(both given)"),
        ("port: 0\nroutes: [{prefix: /, service: web}]\n"
         "jwt: {issuer: i, jwks_url: 'ftp://x/j'}\n",
         "dirigent.yaml:6: mesh.gateway.jwt.jwks_url: expected an http:// or https:// URL"),
        ("port: 0\nroutes: [{prefix: /, service: web}]\n"
         "jwt: {issuer: i, jwks_file: a.json, require: maybe}\n",
         "dirigent.yaml:6: mesh.gateway.jwt.require: expected true or false"),
        ("port: 0\nroutes: [{prefix: /, service: web}]\nlisten: 1\n",
         "dirigent.yaml:6: mesh.gateway.listen: unknown key"),
    ],
)  # fmt: skip
def test_each_gateway_mistake_is_reported_with_line_and_path(gateway: str, expected: str) -> None:
    found = problems(gateway)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found
