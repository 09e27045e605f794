"""The ingress shell on real sockets: keys from a JWKS URL, optional tokens, changes while open."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time

from dirigent.mesh import http1
from dirigent.mesh.config import GatewayJwt, GatewayRoute, GatewaySpec
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.inbound import Inbound
from dirigent.mesh.ingress import Ingress
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.policy.jwt import JwtRule
from dirigent.mesh.telemetry import Telemetry
from dirigent.mesh.tls import ServiceTls
from tests.unit.mesh.tokens import jwk, rsa_key, sign

from .kit import Client, Replica, new_ca, now, on_uvloop, policy

ISSUER = "https://auth.example"
KEY = rsa_key()


async def jwks_server() -> asyncio.Server:
    document = json.dumps({"keys": [jwk(KEY, "k1")]}).encode()

    async def serve(stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        if await reader.head() is not None:
            head = http1.response_head(200, [], length=len(document), keep_alive=False)
            writer.write(head + document)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@on_uvloop
async def test_keys_from_a_url_and_an_optional_token_then_a_required_one_after_apply() -> None:
    ca, replica = new_ca(), Replica("payments")
    mesh = policy("  mtls: STRICT\n")
    loop = asyncio.get_running_loop()
    inbound = Inbound(
        "shop", "payments", mesh, ("127.0.0.1", await replica.start()),
        tls=ServiceTls(ca.issue("payments", now=now())), clock=loop.time, rng=random.Random(1),
    )  # fmt: skip
    await inbound.listen()
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", inbound.listener.port)])
    keys = await jwks_server()
    url = f"http://127.0.0.1:{keys.sockets[0].getsockname()[1]}/jwks.json"
    spec = GatewaySpec(
        port=0, routes=(GatewayRoute("/", "payments"),),
        jwt=GatewayJwt(JwtRule(ISSUER, ("shop",)), jwks_url=url, require=False),
    )  # fmt: skip
    ingress = Ingress(
        spec, dataclasses.replace(mesh, gateway=spec), table,
        ServiceTls(ca.issue("gateway", now=now())), clock=loop.time, wall=time.time,
        rng=random.Random(1), telemetry=Telemetry(), source="gateway",
    )  # fmt: skip
    await ingress.start()
    assert ingress.url is not None
    client = Client(int(ingress.url.rsplit(":", 1)[1]))
    token = sign(KEY, {"iss": ISSUER, "aud": "shop", "exp": time.time() + 300}, "k1")
    bearer = [(b"authorization", f"Bearer {token}".encode())]
    try:
        anonymous = await client.request("/charge")
        valid = await client.request("/charge", headers=bearer)
        forged = await client.request("/charge", headers=[(b"authorization", b"Bearer a.b.c")])
        # Tokens become required; the same keep-alive connection sees the change.
        assert spec.jwt is not None
        required = dataclasses.replace(spec, jwt=dataclasses.replace(spec.jwt, require=True))
        ingress.set_policy(dataclasses.replace(mesh, gateway=required))
        refused = await client.request("/charge")
        still_valid = await client.request("/charge", headers=bearer)
    finally:
        client.close()
        await ingress.stop()
        keys.close()
        inbound.close()
        replica.close()
    assert ingress.jwks_problem is None
    assert (anonymous.status, valid.status, forged.status) == (200, 200, 401)
    assert (refused.status, still_valid.status) == (401, 200)
    xfcc = valid.header("x-seen-x-forwarded-client-cert")
    assert xfcc is not None
    assert xfcc.endswith("URI=spiffe://shop/service/gateway")


@on_uvloop
async def test_an_unreachable_jwks_url_is_reported_and_every_token_is_refused() -> None:
    spec = GatewaySpec(
        port=0, routes=(GatewayRoute("/", "payments"),),
        # Port 9 (discard) on loopback: nothing listens there on a test machine.
        jwt=GatewayJwt(JwtRule(ISSUER), jwks_url="http://127.0.0.1:9/jwks.json"),
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    ingress = Ingress(
        spec, policy(), EndpointTable(), ServiceTls(new_ca().issue("gateway", now=now())),
        clock=loop.time, wall=time.time, rng=random.Random(1), telemetry=Telemetry(),
        source="gateway",
    )  # fmt: skip
    await ingress.start()
    assert ingress.url is not None
    client = Client(int(ingress.url.rsplit(":", 1)[1]))
    token = sign(KEY, {"iss": ISSUER}, "k1")
    try:
        reply = await client.request(
            "/charge", headers=[(b"authorization", f"Bearer {token}".encode())]
        )
    finally:
        client.close()
        await ingress.stop()
    assert ingress.jwks_problem is not None
    assert ingress.jwks_problem.startswith("http://127.0.0.1:9/jwks.json")
    assert reply.status == 401
