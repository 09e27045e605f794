"""The ASGI application's front door: the Step Functions fast path, and what Starlette routes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dirigent.api import ApiContext, create_app
from dirigent.api.auth import Principals
from dirigent.api.backend import LocalBackend
from dirigent.api.context import request_ids
from dirigent.api.keyfile import new_principal
from dirigent.engine import Engine
from dirigent.store import open_store


@pytest.fixture
def context(tmp_path: Path) -> Iterator[ApiContext]:
    store = open_store(f"sqlite:///{tmp_path / 'front.db'}")
    engine = Engine(store)
    context = ApiContext(
        LocalBackend(engine), Principals([new_principal("a", "admin")]), engine.arns
    )
    try:
        yield context
    finally:
        context.close()
        store.close()


def request(context: ApiContext, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(send())


def test_an_unsigned_call_is_refused_in_aws_shape_with_its_request_id(
    context: ApiContext,
) -> None:
    response = request(
        context,
        "POST",
        "/",
        content=b"{}",
        headers={"X-Amz-Target": "AWSStepFunctions.ListStateMachines"},
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/x-amz-json-1.0"
    assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert uuid.UUID(response.headers["x-amzn-requestid"]).version == 4
    assert response.json()["__type"] == "MissingAuthenticationTokenException"
    assert int(response.headers["content-length"]) == len(response.content)


def test_other_methods_on_the_root_are_not_allowed_as_json(context: ApiContext) -> None:
    response = request(context, "GET", "/")
    assert response.status_code == 405
    assert response.json()["error"] == "MethodNotAllowed"


def test_the_rest_api_is_still_routed_behind_the_fast_path(context: ApiContext) -> None:
    assert request(context, "GET", "/healthz").json() == {"status": "ok"}
    assert request(context, "GET", "/api/v1/state-machines").status_code == 401


def test_a_client_gone_before_its_body_arrived_gets_no_answer(context: ApiContext) -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"x-amz-target", b"AWSStepFunctions.ListStateMachines")],
    }
    asyncio.run(create_app(context)(scope, receive, send))
    assert sent == []


def test_an_oversize_declared_body_is_refused_before_it_is_read(context: ApiContext) -> None:
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x", "more_body": True}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"content-length", str(64 * 1024 * 1024).encode())],
    }
    asyncio.run(create_app(context)(scope, receive, send))
    assert reads == 0
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["__type"] == "RequestEntityTooLargeException"


def test_request_ids_are_distinct_uuid4s() -> None:
    next_id = request_ids()
    ids = {next_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 for i in ids)
