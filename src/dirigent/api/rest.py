"""``/api/v1``: the REST API over the same engine, for the dashboard, the CLI and scripts.

Callers present ``Authorization: Bearer TOKEN``; the token's role is checked
for every operation (viewer reads, operator runs executions, admin deploys).
Resources are addressed the way people name them: state machines by name,
executions by ARN. JSON values are JSON here (an execution's input is an
object, not a string holding one) and dates are ISO-8601.

Errors are ``{"error": CODE, "message": TEXT}`` with 400, 401, 403, 404, 409 or
413. This module must never hold state between requests; all of it lives in
the store behind the engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dirigent.api.auth import Principal, Role
from dirigent.api.bodies import read_body
from dirigent.api.context import ApiContext
from dirigent.api.graph import machine_graph, state_runs, state_status
from dirigent.api.internal import (
    DEPLOY_STATE_MACHINE,
    ENGINE_STATS,
    EXECUTION_EVENTS,
    FULL_HISTORY,
    READ_FEED,
)
from dirigent.api.openapi import openapi_document
from dirigent.api.protocol import ApiError
from dirigent.asl.parser import parse_definition
from dirigent.engine import ServiceError

#: the largest REST body read (a definition and some room)
MAX_REST_BODY = 2 * 1024 * 1024
#: how often a live stream looks for new history events
STREAM_POLL_SECONDS = 0.2
#: a comment line this often keeps proxies from closing a quiet stream
STREAM_KEEPALIVE_SECONDS = 15.0
_NOT_FOUND = ("DoesNotExist", "ResourceNotFound")
_CONFLICT = ("AlreadyExists", "ConflictException", "NotRedrivable")

Handler = Callable[[ApiContext, Request, Principal], Any]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_plain(value), status_code=status)


def error_response(code: str, message: str, status: int) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _status_of(exc: ServiceError) -> int:
    if exc.code.endswith(_NOT_FOUND):
        return 404
    if exc.code.endswith(_CONFLICT):
        return 409
    return 400


def _bearer(context: ApiContext, request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError("Unauthorized", "Authorization: Bearer TOKEN is required", 401)
    principal = context.principals.by_token(token.strip())
    if principal is None:
        raise ApiError("Unauthorized", "The bearer token is not valid", 401)
    return principal


def _route(path: str, method: str, role: Role, handler: Handler, context: ApiContext) -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            principal = _bearer(context, request)
            if not principal.may(role):
                raise ApiError(
                    "Forbidden", f"role {principal.role} may not do this; it needs {role}", 403
                )
            response: Response = await handler(context, request, principal)
            return response
        except ApiError as exc:
            return error_response(exc.code, exc.message, exc.status)
        except ServiceError as exc:
            return error_response(exc.code, exc.message, _status_of(exc))

    return Route(path, endpoint, methods=[method])


# --------------------------------------------------------------------------- request pieces


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_REST_BODY)
    try:
        document = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ApiError("BadRequest", f"the body is not valid JSON: {exc}", 400) from exc
    if not isinstance(document, dict):
        raise ApiError("BadRequest", "the body must be a JSON object", 400)
    return document


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError("BadRequest", f"{name} must be an integer from {low} to {high}", 400)
    return int(text)


def _bool_query(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false"):
        raise ApiError("BadRequest", f"{name} must be true or false", 400)
    return text == "true"


def _string(document: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError("BadRequest", f"{name} must be a string", 400)
    return value


def _machine_arn(context: ApiContext, request: Request) -> str:
    return context.arns.state_machine(request.path_params["name"])


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


# --------------------------------------------------------------------------- state machines


async def list_state_machines(context: ApiContext, request: Request, _: Principal) -> Response:
    query: dict[str, Any] = {"maxResults": _int_query(request, "limit", 100, 1, 1000)}
    if "nextToken" in request.query_params:
        query["nextToken"] = request.query_params["nextToken"]
    listed = await context.act("ListStateMachines", query)
    return _json({"stateMachines": listed["stateMachines"], "nextToken": listed.get("nextToken")})


async def deploy_state_machine(context: ApiContext, request: Request, _: Principal) -> Response:
    """Create the machine, or update its definition when it exists: deploying is idempotent."""
    body = await _body(request)
    name = _string(body, "name", required=True)
    definition = body.get("definition")
    if isinstance(definition, dict):
        definition = json.dumps(definition)
    if not isinstance(definition, str):
        raise ApiError("BadRequest", "definition must be an ASL object or JSON text", 400)
    machine_type = _string(body, "type") or "STANDARD"
    role = _string(body, "roleArn") or ""
    described = await context.act(
        DEPLOY_STATE_MACHINE,
        {"name": name, "definition": definition, "type": machine_type, "roleArn": role},
    )
    created = bool(described["created"])
    return _json({**_machine_view(described), "created": created}, 201 if created else 200)


def _machine_view(described: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "type": described["type"],
        "definition": json.loads(described["definition"]),
        "roleArn": described["roleArn"],
        "revisionId": described.get("revisionId"),
        "creationDate": described["creationDate"],
    }


async def describe_state_machine(context: ApiContext, request: Request, _: Principal) -> Response:
    described = await context.act(
        "DescribeStateMachine", {"stateMachineArn": _machine_arn(context, request)}
    )
    graph = machine_graph(parse_definition(described["definition"]))
    return _json({**_machine_view(described), "graph": graph})


async def state_machine_graph(context: ApiContext, request: Request, _: Principal) -> Response:
    described = await context.act(
        "DescribeStateMachine", {"stateMachineArn": _machine_arn(context, request)}
    )
    return _json(machine_graph(parse_definition(described["definition"])))


async def delete_state_machine(context: ApiContext, request: Request, _: Principal) -> Response:
    arn = _machine_arn(context, request)
    await context.act("DescribeStateMachine", {"stateMachineArn": arn})  # 404 when absent
    await context.act("DeleteStateMachine", {"stateMachineArn": arn})
    return Response(status_code=204)


# --------------------------------------------------------------------------- executions


async def start_execution(context: ApiContext, request: Request, _: Principal) -> Response:
    body = await _body(request)
    started: dict[str, Any] = {
        "stateMachineArn": _machine_arn(context, request),
        "input": json.dumps(body.get("input", {})),
    }
    name = _string(body, "name")
    if name is not None:
        started["name"] = name
    return _json(await context.act("StartExecution", started), 201)


async def list_executions(context: ApiContext, request: Request, _: Principal) -> Response:
    query: dict[str, Any] = {"maxResults": _int_query(request, "limit", 100, 1, 1000)}
    machine = request.query_params.get("stateMachine")
    if machine is not None:
        query["stateMachineArn"] = context.arns.state_machine(machine)
    if "status" in request.query_params:
        query["statusFilter"] = request.query_params["status"]
    if "nextToken" in request.query_params:
        query["nextToken"] = request.query_params["nextToken"]
    listed = await context.act("ListExecutions", query)
    return _json({"executions": listed["executions"], "nextToken": listed.get("nextToken")})


def _execution_view(described: Mapping[str, Any]) -> dict[str, Any]:
    view = {
        key: described.get(key)
        for key in (
            "executionArn",
            "stateMachineArn",
            "name",
            "status",
            "startDate",
            "stopDate",
            "error",
            "cause",
            "redriveCount",
            "redriveStatus",
        )
    }
    view["input"] = _loads(described.get("input"))
    view["output"] = _loads(described.get("output"))
    return view


async def describe_execution(context: ApiContext, request: Request, _: Principal) -> Response:
    described = await context.act("DescribeExecution", {"executionArn": request.path_params["arn"]})
    return _json(_execution_view(described))


async def execution_history(context: ApiContext, request: Request, _: Principal) -> Response:
    query: dict[str, Any] = {
        "executionArn": request.path_params["arn"],
        "maxResults": _int_query(request, "limit", 1000, 1, 1000),
        "reverseOrder": _bool_query(request, "reverse"),
    }
    if "nextToken" in request.query_params:
        query["nextToken"] = request.query_params["nextToken"]
    history = await context.act("GetExecutionHistory", query)
    return _json({"events": history["events"], "nextToken": history.get("nextToken")})


async def execution_states(context: ApiContext, request: Request, _: Principal) -> Response:
    arn = request.path_params["arn"]
    described = await context.act("DescribeExecution", {"executionArn": arn})
    runs = state_runs((await context.act(FULL_HISTORY, {"executionArn": arn}))["events"])
    for run in runs:
        run["input"], run["output"] = _loads(run["input"]), _loads(run["output"])
    return _json({"status": described["status"], "states": runs, "latest": state_status(runs)})


async def stop_execution(context: ApiContext, request: Request, _: Principal) -> Response:
    body = await _body(request)
    query: dict[str, Any] = {"executionArn": request.path_params["arn"]}
    for member in ("error", "cause"):
        value = _string(body, member)
        if value is not None:
            query[member] = value
    return _json(await context.act("StopExecution", query))


async def redrive_execution(context: ApiContext, request: Request, _: Principal) -> Response:
    return _json(
        await context.act("RedriveExecution", {"executionArn": request.path_params["arn"]})
    )


async def stream_events(context: ApiContext, request: Request, _: Principal) -> Response:
    """Server-sent events: each history event as it is written, then ``end`` when it stops.

    ``Last-Event-ID`` (sent by browsers on reconnect) or ``?after=`` resumes
    after that event id, so a dashboard that loses its connection misses nothing.
    """
    arn = request.path_params["arn"]
    await context.act("DescribeExecution", {"executionArn": arn})  # 404 before streaming
    resume = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not resume.isdigit():
        raise ApiError("BadRequest", "after must be an event id", 400)

    async def events() -> AsyncIterator[str]:
        after = int(resume)
        quiet = 0.0
        while True:
            polled = await context.act(EXECUTION_EVENTS, {"executionArn": arn, "after": after})
            batch, status = polled["events"], polled["status"]
            for event in batch:
                after = event["id"]
                yield _sse("history", event, str(after))
            if not batch and status != "RUNNING":
                yield _sse("end", {"status": status})
                return
            quiet = 0.0 if batch else await _idle(quiet)
            if context.closing:
                return  # the client resumes after the last id it saw
            if quiet >= STREAM_KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"

    return _event_stream(events())


async def _idle(quiet: float) -> float:
    """Wait one poll; how long the stream has been quiet since its last message."""
    await asyncio.sleep(STREAM_POLL_SECONDS)
    return quiet + STREAM_POLL_SECONDS


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(_plain(data))}\n\n"


async def stream_all_events(context: ApiContext, request: Request, _: Principal) -> Response:
    """Server-sent events: every execution's history events as they commit, for the dashboard.

    The stream opens with an ``open`` event carrying the position (its ``id``);
    each ``history`` event is one history event with its ``executionArn``. A
    client resuming with ``Last-Event-ID`` (browsers do) or ``?after=`` gets
    what it missed; if that is no longer held (or the server restarted), a
    ``reset`` event says so first, and the client should reload its views.
    """
    resume = request.headers.get("last-event-id") or request.query_params.get("after")
    # Checks the position (400) and that there is a feed (404) before streaming.
    opened = await context.act(READ_FEED, {} if resume is None else {"after": resume})
    start = opened["from"]

    async def events() -> AsyncIterator[str]:
        after = start
        yield _sse("open", {"position": after}, after)
        quiet = 0.0
        # A resumed stream's first batch was read when its position was checked.
        batch: dict[str, Any] | None = opened if resume is not None else None
        while True:
            if batch is None:
                batch = await context.act(READ_FEED, {"after": after})
            if batch["missed"]:
                reason = "events after this position are no longer held; reload"
                yield _sse("reset", {"position": batch["position"], "reason": reason})
            for item in batch["events"]:
                yield _sse("history", item["event"], item["id"])
            after, read = batch["position"], bool(batch["events"])
            batch = None
            quiet = 0.0 if read else await _idle(quiet)
            if context.closing:
                return  # the client resumes after the last id it saw
            if quiet >= STREAM_KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"

    return _event_stream(events())


async def engine_stats(context: ApiContext, _request: Request, _: Principal) -> Response:
    """This node's engine worker: what it has done since it started, and how its
    loop thread's time divides between working and waiting for work. The figures
    are cumulative: difference two readings for a period. A loop that never
    waits has more work than it can take. Read from memory, no store access."""
    return _json(await context.act(ENGINE_STATS, {}))


async def openapi(_context: ApiContext, request: Request, _: Principal) -> Response:
    return _json(openapi_document(str(request.base_url).rstrip("/")))


def routes(context: ApiContext) -> list[Route]:
    base = "/api/v1"
    table: list[tuple[str, str, Role, Handler]] = [
        ("/openapi.json", "GET", "viewer", openapi),
        ("/engine", "GET", "viewer", engine_stats),
        ("/state-machines", "GET", "viewer", list_state_machines),
        ("/state-machines", "POST", "admin", deploy_state_machine),
        ("/state-machines/{name}", "GET", "viewer", describe_state_machine),
        ("/state-machines/{name}", "DELETE", "admin", delete_state_machine),
        ("/state-machines/{name}/graph", "GET", "viewer", state_machine_graph),
        ("/state-machines/{name}/executions", "POST", "operator", start_execution),
        ("/events", "GET", "viewer", stream_all_events),
        ("/executions", "GET", "viewer", list_executions),
        ("/executions/{arn}", "GET", "viewer", describe_execution),
        ("/executions/{arn}/history", "GET", "viewer", execution_history),
        ("/executions/{arn}/states", "GET", "viewer", execution_states),
        ("/executions/{arn}/events", "GET", "viewer", stream_events),
        ("/executions/{arn}/stop", "POST", "operator", stop_execution),
        ("/executions/{arn}/redrive", "POST", "operator", redrive_execution),
    ]
    return [
        _route(base + path, method, role, handler, context) for path, method, role, handler in table
    ]
