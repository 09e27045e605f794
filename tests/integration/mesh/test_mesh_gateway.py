"""The ingress gateway on real sockets: JWT at the door, then the mesh to the service."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

from dirigent.mesh import http1
from dirigent.mesh.endpoints import EndpointTable
from dirigent.mesh.gateway import Gateway, GatewayRoute, Jwks
from dirigent.mesh.policy.balance import Endpoint
from dirigent.mesh.policy.jwt import JwtRule
from dirigent.mesh.proxy import Proxy
from tests.unit.mesh.tokens import ec_key, jwk, rsa_key, sign

from .kit import Client, Replica, Reply, on_uvloop, policy

ISSUER = "https://auth.example"
KEY = rsa_key()


def claims(**extra: object) -> dict[str, object]:
    return {"iss": ISSUER, "aud": "shop", "sub": "alice", "exp": time.time() + 300, **extra}


async def through_gateway(
    jwks: Jwks, *tokens: str | None, path: str = "/api/charge"
) -> tuple[list[Reply], Replica]:
    replica = Replica("payments")
    table = EndpointTable()
    table.update("payments", [Endpoint("127.0.0.1", await replica.start())])
    loop = asyncio.get_running_loop()
    proxy = Proxy(policy(), table, clock=loop.time, rng=random.Random(1), source="gateway")
    gateway = Gateway(
        (GatewayRoute("/api/", "payments"),), proxy,
        jwt_rule=JwtRule(ISSUER, ("shop",)), jwks=jwks,
    )  # fmt: skip
    server = await gateway.listen()
    client = Client(server.sockets[0].getsockname()[1])
    replies = []
    try:
        for token in tokens:
            headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
            replies.append(await client.request(path, host="shop.example", headers=headers))
    finally:
        client.close()
        server.close()
        proxy.close()
        replica.close()
    return replies, replica


def jwks_of(*keys: tuple[object, str]) -> Jwks:
    jwks = Jwks()
    jwks.load_document({"keys": [jwk(key, kid) for key, kid in keys]})  # type: ignore[arg-type]
    return jwks


@on_uvloop
async def test_a_valid_token_reaches_the_service_through_the_mesh() -> None:
    (reply,), replica = await through_gateway(jwks_of((KEY, "k1")), sign(KEY, claims(), "k1"))
    assert reply.status == 200
    assert reply.header("x-served-by") == "payments"
    assert replica.served == 1


@on_uvloop
async def test_a_missing_expired_or_forged_token_gets_401_and_never_reaches_the_service() -> None:
    expired = sign(KEY, claims(exp=time.time() - 3600), "k1")
    forged = sign(rsa_key(), claims(), "k1")
    replies, replica = await through_gateway(jwks_of((KEY, "k1")), None, expired, forged)
    assert [r.status for r in replies] == [401, 401, 401]
    assert [r.body for r in replies] == [
        b"Jwt is missing\n", b"Jwt is expired\n", b"Jwt verification fails\n",
    ]  # fmt: skip
    assert all((r.header("www-authenticate") or "").startswith("Bearer") for r in replies)
    assert replica.served == 0


@on_uvloop
async def test_a_path_no_gateway_route_covers_gets_404() -> None:
    (reply,), _ = await through_gateway(
        jwks_of((KEY, "k1")), sign(KEY, claims(), "k1"), path="/internal"
    )
    assert reply.status == 404


@on_uvloop
async def test_jwks_load_from_a_file(tmp_path: Path) -> None:
    key = ec_key()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(key, "e1")]}))
    jwks = Jwks()
    jwks.load_file(path)
    (reply,), _ = await through_gateway(jwks, sign(key, claims(), "e1"))
    assert reply.status == 200


@on_uvloop
async def test_jwks_are_fetched_from_a_url() -> None:
    document = json.dumps({"keys": [jwk(KEY, "k1")]}).encode()

    async def serve(stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        request = await reader.head()
        assert request is not None
        head = http1.response_head(
            200, [(b"content-type", b"application/json")], length=len(document), keep_alive=False
        )
        writer.write(head + document)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    jwks = Jwks()
    try:
        await jwks.fetch(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/jwks.json")
    finally:
        server.close()
    (reply,), _ = await through_gateway(jwks, sign(KEY, claims(), "k1"))
    assert reply.status == 200
