"""``POST /``: the Step Functions JSON protocol, authenticated with SigV4.

A request goes through, in this order: the body is read with a bound; the
signature is verified (no caller learns anything, not even whether an action
exists, before that); the target names an action; the caller's role allows
it; the body decodes to the action's shape; the engine acts on a pool thread.
Each step's failure is AWS's error shape with AWS's status, and none of them
writes anything: only the engine's action does.

This module must never interpret an action's members beyond their JSON
types; the engine owns their meaning and its errors.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import Request
from starlette.responses import Response

from dirigent import sigv4
from dirigent.api.auth import Principal, role_for
from dirigent.api.bodies import read_body
from dirigent.api.context import ApiContext
from dirigent.api.protocol import (
    CONTENT_TYPE,
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


def _error(code: str, message: str, status: int, request_id: str) -> Response:
    return Response(
        encode_error(code, message),
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code},
    )


def authenticate(context: ApiContext, request: Request, body: bytes) -> Principal:
    signed = sigv4.SignedRequest(
        method=request.method,
        raw_path=request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
        raw_query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=tuple(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        ),
        body=body,
    )
    verdict = sigv4.verify(signed, context.principals.secret_for, context.now())
    if isinstance(verdict, sigv4.Rejected):
        raise ApiError(verdict.code, verdict.message, _REJECTION_STATUS.get(verdict.code, 400))
    principal = context.principals.by_access_key(verdict.access_key_id)
    assert principal is not None  # verify() found its secret a moment ago
    return principal


async def handle(context: ApiContext, request: Request) -> Response:
    request_id = str(uuid.uuid4())
    try:
        body = await read_body(request)
        principal = authenticate(context, request, body)
        action = action_of(request.headers.get("x-amz-target"))
        if not principal.may(role_for(action)):
            raise ApiError(
                "AccessDeniedException",
                f"User: {principal.name} (role {principal.role}) is not authorized to perform: "
                f"states:{action}",
            )
        payload = decode_request(action, body)
        result = await context.act(action, payload)
    except ApiError as exc:
        return _error(exc.code, exc.message, exc.status, request_id)
    except ServiceError as exc:
        return _error(exc.code, exc.message, exc.status, request_id)
    except Exception:
        # A bug, not the caller's fault: say so without leaking internals.
        log.exception("request %s failed", request_id)
        return _error(
            "InternalFailure", "The server failed to process the request", 500, request_id
        )
    return Response(
        encode_response(result),
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id},
    )
