"""What a mesh worker carries in memory: ``cryptography`` only when it signs or checks tokens.

The package costs a worker about 12 MB of RSS. Listeners load certificates
through :mod:`ssl` and read a peer's SPIFFE ID without it; only the CA (which
signs) and the JWT check (which verifies) need it, and they import it when
they run. Each probe runs in a fresh interpreter, so a top-level import
anywhere on the path of a plain-text listener fails the first test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: a plain-text outbound listener forwarding to an inbound listener in front of
#: a replica, under a policy whose gateway checks tokens (parsed, not used)
PLAIN_TEXT_HOP = """\
import asyncio, random, sys
import uvloop
from dirigent.manifest import parse_manifest
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.gateway import Gateway, Jwks
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.proxy import Proxy
from dirigent.mesh.section import MESH_SECTIONS

MANIFEST = '''\\
app: shop
services:
  payments: {command: [payments]}
mesh:
  mtls: DISABLE
  gateway:
    port: 8080
    routes: [{prefix: /, service: payments}]
    jwt: {issuer: https://auth.example, jwks_file: jwks.json}
'''

async def replica(reader, writer):
    while await reader.readuntil(b"\\r\\n\\r\\n"):
        writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")

async def main():
    loop = asyncio.get_running_loop()
    policy = parse_manifest(MANIFEST, sections=MESH_SECTIONS).extensions["mesh"]
    server = await asyncio.start_server(replica, "127.0.0.1", 0)
    inbound = Inbound("shop", "payments", policy, ("127.0.0.1", server.sockets[0].getsockname()[1]),
                      tls=None, clock=loop.time, rng=random.Random(1))
    listener = await inbound.listen()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", listener.port)])
    proxy = Proxy(policy, table, clock=loop.time, rng=random.Random(1), source="orders")
    Gateway((), proxy, jwt_rule=policy.gateway.jwt.rule, jwks=Jwks())
    outbound = await proxy.listen()
    reader, writer = await asyncio.open_connection(*outbound.sockets[0].getsockname()[:2])
    writer.write(b"GET /charge HTTP/1.1\\r\\nhost: payments\\r\\n\\r\\n")
    head = await reader.readuntil(b"\\r\\n\\r\\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    writer.close()
    proxy.close()
    inbound.close()
    server.close()

uvloop.run(main())
"""

#: what the probe prints: the cryptography modules the interpreter loaded
LOADED = """
import json, sys
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")))
"""


def loaded_after(code: str) -> list[str]:
    probe = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + LOADED],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    modules: list[str] = json.loads(probe.stdout.splitlines()[-1])
    return modules


def test_a_plain_text_hop_through_outbound_and_inbound_listeners_never_imports_cryptography() -> (
    None
):
    assert loaded_after(PLAIN_TEXT_HOP) == []


def test_importing_every_listener_and_the_tls_contexts_does_not_import_cryptography() -> None:
    code = """\
        import dirigent.mesh.gateway, dirigent.mesh.inbound, dirigent.mesh.ingress
        import dirigent.mesh.proxy, dirigent.mesh.section, dirigent.mesh.tls
        """
    assert loaded_after(code) == []


def test_reading_a_jwks_imports_cryptography_then() -> None:
    # The probe sees the package when it is used: the tests above are not vacuous.
    code = """\
        from dirigent.mesh.policy.jwt import read_jwks
        read_jwks({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}]})
        """
    assert "cryptography" in loaded_after(code)


def test_signing_an_identity_imports_cryptography() -> None:
    assert "cryptography" in loaded_after("import dirigent.mesh.ca\n")
