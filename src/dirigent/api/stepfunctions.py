"""``POST /``: the Step Functions JSON protocol, authenticated with SigV4.

A request goes through, in this order: the body is read with a bound; the
signature is verified (no caller learns anything, not even whether an action
exists, before that); the target names an action; the caller's role allows
it; the body decodes to the action's shape; the engine acts, through the
context's backend (in the engine's process, or in this one on a pool
thread). Each step's failure is AWS's error shape with AWS's status, and none
of them writes anything: only the engine's action does.

This is the hot path (every SDK call), so it is a plain ASGI handler reading
the scope and sending two messages itself; Starlette's request objects,
routing and middleware cost about a third of the event loop's time per call,
which in ``dirigent up`` (one process) competes for the GIL with the thread
that holds the store's transaction.

This module must never interpret an action's members beyond their JSON
types; the engine owns their meaning and its errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from starlette.types import Receive, Scope, Send

from dirigent import sigv4
from dirigent.api.actions import LONG_ACTIONS
from dirigent.api.auth import Principal, role_for
from dirigent.api.bodies import Disconnected, read_limited, receive_chunks, until_disconnected
from dirigent.api.context import ApiContext
from dirigent.api.protocol import (
    CONTENT_TYPE,
    MAX_BODY_BYTES,
    ApiError,
    action_of,
    decode_request,
    encode_error,
    encode_response,
)
from dirigent.engine import ServiceError

log = logging.getLogger(__name__)

#: HTTP status of each SigV4 rejection, as AWS answers them
_REJECTION_STATUS = {"MissingAuthenticationTokenException": 403}
_CONTENT_TYPE = CONTENT_TYPE.encode()

Headers = tuple[tuple[str, str], ...]


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def authenticate(context: ApiContext, scope: Scope, headers: Headers, body: bytes) -> Principal:
    signed = sigv4.SignedRequest(
        method=scope["method"],
        raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
    )
    verdict = sigv4.verify(
        signed, context.principals.secret_for, context.now(), context.signing_keys
    )
    if isinstance(verdict, sigv4.Rejected):
        raise ApiError(verdict.code, verdict.message, _REJECTION_STATUS.get(verdict.code, 400))
    principal = context.principals.by_access_key(verdict.access_key_id)
    assert principal is not None  # verify() found its secret a moment ago
    return principal


async def answer(context: ApiContext, scope: Scope, receive: Receive) -> tuple[int, bytes, str]:
    """Status, body and error type (empty on success) for one call; never raises ApiError."""
    # ASGI servers hand over lower-case names; latin-1 keeps every byte as sent,
    # which the signature covers.
    headers: Headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    )
    try:
        body = await read_limited(
            _header(headers, "content-length"), receive_chunks(receive), MAX_BODY_BYTES
        )
        principal = authenticate(context, scope, headers, body)
        action = action_of(_header(headers, "x-amz-target"))
        if not principal.may(role_for(action)):
            raise ApiError(
                "AccessDeniedException",
                f"User: {principal.name} (role {principal.role}) is not authorized to perform: "
                f"states:{action}",
            )
        payload = decode_request(action, body)
        if action in LONG_ACTIONS:
            result = await _unless_gone(context.act(action, payload), receive)
        else:
            result = await context.act(action, payload)
    except ApiError as exc:
        return exc.status, encode_error(exc.code, exc.message), exc.code
    except ServiceError as exc:
        return exc.status, encode_error(exc.code, exc.message), exc.code
    return 200, encode_response(result), ""


async def _unless_gone(
    call: Coroutine[Any, Any, dict[str, Any]], receive: Receive
) -> dict[str, Any]:
    """A long call's answer, or :class:`Disconnected` as soon as its client goes away.

    The server does not cancel a request whose client left (uvicorn only tells
    ``receive``), and a long poll left running would hand the next activity
    task to a worker that is not there. Cancelling the call tells the engine to
    stop (:meth:`dirigent.api.backend.LocalBackend.submit`).
    """
    work = asyncio.ensure_future(call)
    gone = asyncio.ensure_future(until_disconnected(receive))
    try:
        done, _ = await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also when this request is cancelled itself (the server's graceful
        # limit ran out): the call must hear of it, not run on for nobody.
        gone.cancel()
        if not work.done():
            work.cancel()
    if work in done:
        return work.result()
    raise Disconnected


async def handle(context: ApiContext, scope: Scope, receive: Receive, send: Send) -> None:
    request_id = context.request_id()
    try:
        status, body, error_type = await answer(context, scope, receive)
    except Disconnected:
        return
    except Exception:
        # A bug, not the caller's fault: say so without leaking internals.
        log.exception("request %s failed", request_id)
        error_type = "InternalFailure"
        status, body = 500, encode_error(error_type, "The server failed to process the request")
    headers = [
        (b"content-type", _CONTENT_TYPE),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-requestid", request_id.encode()),
    ]
    if error_type:
        headers.append((b"x-amzn-errortype", error_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
