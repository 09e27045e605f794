"""Under ``dirigent up`` the ingress gateway takes outside clients to services through the mesh.

The gateway checks the bearer token, then calls the service as ``gateway``
through the service's own inbound listeners: mTLS (STRICT here) and the
service's authorization policies apply, and the mesh's metrics count it.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dirigent.runtime.channel import call
from dirigent.runtime.control import Done, Status
from dirigent.runtime.host import AppPaths
from tests.integration.apps import dirigent, free_port
from tests.unit.mesh.tokens import jwk, rsa_key, sign

#: the tiny services of the runtime's mesh tests; ``back`` echoes who called it
APPS = Path(__file__).parents[1] / "runtime" / "mesh_apps.py"
ISSUER = "https://auth.example"
KEY = rsa_key()


def _token(**claims: object) -> str:
    return sign(KEY, {"iss": ISSUER, "aud": "gate", "exp": time.time() + 300, **claims}, "k1")


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def _mesh(paths: AppPaths) -> dict[str, Any]:
    """What ``dirigent status`` says of the mesh."""
    reply = call(paths.app_dir, paths.socket, Status(), timeout=30)
    assert isinstance(reply, Done)
    planes: list[dict[str, Any]] = reply.body["control_plane"]  # type: ignore[assignment]  # the status body is loosely typed
    return next(p["mesh"] for p in planes if "mesh" in p)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The app ``gate`` up, with its gateway: (gateway URL, metrics URL)."""
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk(KEY, "k1")]}))
    gateway_port = free_port()
    (tmp_path / "dirigent.yaml").write_text(
        textwrap.dedent(f"""\
        app: gate
        services:
          back:
            command: [{sys.executable}, {APPS}, back]
            probes: {{readiness: {{http: /healthz, period: 0.2}}}}
        mesh:
          mtls: STRICT
          gateway:
            port: {gateway_port}
            routes: [{{prefix: /hello, service: back}}, {{prefix: /admin, service: back}}]
            jwt: {{issuer: "{ISSUER}", audiences: [gate], jwks_file: jwks.json}}
          authorization:
            back:
              policies:
                - name: no-gateway-on-admin
                  action: DENY
                  rules: [{{from: [gateway], paths: [/admin*]}}]
        """),
        encoding="utf-8",
    )
    started = dirigent(tmp_path, "up", "--detach", "--api-port", str(free_port()))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        paths = AppPaths.for_manifest(tmp_path / "dirigent.yaml")
        mesh = _mesh(paths)
        assert mesh["gateway"] == f"http://127.0.0.1:{gateway_port}"
        # The gateway listens from the start; the service is routable once ready.
        deadline = time.monotonic() + 30
        while not mesh["endpoints"]["back"] and time.monotonic() < deadline:
            time.sleep(0.2)
            mesh = _mesh(paths)
        yield mesh["gateway"], mesh["metrics"]
    finally:
        stopped = dirigent(tmp_path, "down")
        assert stopped.returncode == 0, stopped.stderr


def test_a_missing_or_expired_token_gets_401_at_the_gateway(gate: tuple[str, str]) -> None:
    url, _ = gate
    missing = _get(url + "/hello")
    expired = _get(url + "/hello", _token(exp=time.time() - 3600))
    foreign = _get(url + "/hello", sign(rsa_key(), {"iss": ISSUER, "aud": "gate"}, "k1"))
    assert [r[0] for r in (missing, expired, foreign)] == [401, 401, 401]
    assert [r[2] for r in (missing, expired, foreign)] == [
        "Jwt is missing\n", "Jwt is expired\n", "Jwt verification fails\n",
    ]  # fmt: skip
    assert missing[1]["www-authenticate"].startswith("Bearer")


def test_a_valid_token_reaches_the_service_over_mtls_as_the_gateway(
    gate: tuple[str, str],
) -> None:
    url, _ = gate
    status, _, body = _get(url + "/hello", _token())
    assert status == 200
    # The service is told the caller the mesh vouched for: the gateway's identity.
    assert body == "hello By=spiffe://gate/service/back;URI=spiffe://gate/service/gateway"


def test_the_services_authorization_applies_to_the_gateway(gate: tuple[str, str]) -> None:
    url, _ = gate
    status, headers, _ = _get(url + "/admin/users", _token())
    assert status == 403
    assert headers["x-dirigent-policy"] == "no-gateway-on-admin"


def test_the_mesh_metrics_count_what_the_gateway_let_through_and_refused(
    gate: tuple[str, str],
) -> None:
    url, metrics = gate
    for _ in range(3):
        assert _get(url + "/hello", _token())[0] == 200
    assert _get(url + "/hello")[0] == 401
    with urllib.request.urlopen(metrics, timeout=15) as reply:
        text = reply.read().decode()
    served = (
        'dirigent_mesh_requests_total{reporter="destination",'
        'source="spiffe://gate/service/gateway",destination="back",route="default",'
        'status="200"} 3'
    )
    sent = (
        'dirigent_mesh_requests_total{reporter="source",source="gateway",destination="back",'
        'route="default",status="200"} 3'
    )
    refused = (
        'dirigent_mesh_requests_total{reporter="source",source="gateway",destination="back",'
        'route="gateway",status="401"} 1'
    )
    for line in (served, sent, refused):
        assert line in text.splitlines(), f"{line} not in\n{text}"
