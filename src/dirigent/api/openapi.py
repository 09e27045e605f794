"""The OpenAPI 3.1 document of ``/api/v1``, built as data.

Kept next to the handlers in :mod:`dirigent.api.rest` and checked against
them by schemathesis in the integration suite: every response a handler can
give is described here, errors included.

This module must never import the web framework; the document is plain data.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_DATE = {"type": "string", "format": "date-time"}
_ANY: dict[str, Any] = {}
_NAME = {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "^[A-Za-z0-9_.-]+$"}
_EXECUTION_ARN = {"type": "string", "minLength": 1, "maxLength": 2048}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_SCHEMAS: dict[str, Any] = {
    "Error": _object(["error", "message"], error=_STRING, message=_STRING),
    "StateMachineSummary": _object(
        ["stateMachineArn", "name", "type", "creationDate"],
        stateMachineArn=_STRING,
        name=_STRING,
        type={"enum": ["STANDARD", "EXPRESS"]},
        creationDate=_DATE,
    ),
    "EngineStats": _object(
        [
            "node",
            "running",
            "transitions",
            "commits",
            "tasksRun",
            "iterations",
            "busySeconds",
            "idleSeconds",
            "utilization",
        ],
        node=_STRING,
        running={"type": "boolean"},
        transitions={"type": "integer", "minimum": 0},
        commits={"type": "integer", "minimum": 0},
        tasksRun={"type": "integer", "minimum": 0},
        iterations={"type": "integer", "minimum": 0},
        busySeconds={"type": "number", "minimum": 0},
        idleSeconds={"type": "number", "minimum": 0},
        utilization={"type": "number", "minimum": 0, "maximum": 1},
    ),
    "StateMachineList": _object(
        ["stateMachines", "nextToken"],
        stateMachines={"type": "array", "items": _ref("StateMachineSummary")},
        nextToken=_NULLABLE_STRING,
    ),
    "Graph": _object(
        ["startAt", "nodes", "edges"],
        startAt=_STRING,
        nodes={
            "type": "array",
            "items": _object(
                ["id", "type", "parent", "branch", "start", "end"],
                id=_STRING,
                type=_STRING,
                parent=_NULLABLE_STRING,
                branch={"type": ["integer", "null"]},
                start={"type": "boolean"},
                end={"type": "boolean"},
                comment=_NULLABLE_STRING,
            ),
        },
        edges={
            "type": "array",
            "items": _object(
                ["from", "to", "kind"],
                to=_STRING,
                kind={"enum": ["next", "choice", "default", "catch"]},
                label=_NULLABLE_STRING,
                **{"from": _STRING},
            ),
        },
    ),
    "StateMachine": _object(
        ["stateMachineArn", "name", "type", "definition", "roleArn", "creationDate"],
        stateMachineArn=_STRING,
        name=_STRING,
        type={"enum": ["STANDARD", "EXPRESS"]},
        definition={"type": "object"},
        roleArn=_STRING,
        revisionId=_NULLABLE_STRING,
        creationDate=_DATE,
        graph=_ref("Graph"),
        created={"type": "boolean"},
    ),
    "Deploy": _object(
        ["name", "definition"],
        name=_NAME,
        definition={"oneOf": [{"type": "object"}, {"type": "string"}]},
        type={"enum": ["STANDARD", "EXPRESS"]},
        roleArn=_STRING,
    ),
    "Start": {
        "type": "object",
        "properties": {"name": _NAME, "input": _ANY},
    },
    "Started": _object(["executionArn", "startDate"], executionArn=_STRING, startDate=_DATE),
    "ExecutionSummary": _object(
        ["executionArn", "stateMachineArn", "name", "status", "startDate"],
        executionArn=_STRING,
        stateMachineArn=_STRING,
        name=_STRING,
        status=_STRING,
        startDate=_DATE,
        stopDate=_DATE,
    ),
    "ExecutionList": _object(
        ["executions", "nextToken"],
        executions={"type": "array", "items": _ref("ExecutionSummary")},
        nextToken=_NULLABLE_STRING,
    ),
    "Execution": _object(
        ["executionArn", "stateMachineArn", "name", "status", "startDate", "input", "output"],
        executionArn=_STRING,
        stateMachineArn=_STRING,
        name=_STRING,
        status={
            "enum": ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
        },
        startDate=_DATE,
        stopDate={"type": ["string", "null"], "format": "date-time"},
        error=_NULLABLE_STRING,
        cause=_NULLABLE_STRING,
        redriveCount={"type": ["integer", "null"]},
        redriveStatus=_NULLABLE_STRING,
        input=_ANY,
        output=_ANY,
    ),
    "History": _object(
        ["events", "nextToken"],
        events={
            "type": "array",
            "items": _object(
                ["id", "previousEventId", "type", "timestamp"],
                id={"type": "integer"},
                previousEventId={"type": "integer"},
                type=_STRING,
                timestamp=_DATE,
            ),
        },
        nextToken=_NULLABLE_STRING,
    ),
    "StateRuns": _object(
        ["status", "states", "latest"],
        status=_STRING,
        states={
            "type": "array",
            "items": _object(
                ["name", "type", "status", "enteredAt", "input", "output"],
                name=_STRING,
                type=_STRING,
                status={
                    "enum": [
                        "RUNNING",
                        "SUCCEEDED",
                        "CAUGHT_ERROR",
                        "FAILED",
                        "ABORTED",
                        "TIMED_OUT",
                    ]
                },
                enteredAt=_DATE,
                exitedAt={"type": ["string", "null"], "format": "date-time"},
                input=_ANY,
                output=_ANY,
                error=_NULLABLE_STRING,
                cause=_NULLABLE_STRING,
            ),
        },
        latest={"type": "object", "additionalProperties": _STRING},
    ),
    "Stopped": _object(["stopDate"], stopDate=_DATE),
    "Redriven": _object(["redriveDate"], redriveDate=_DATE),
    "Stop": {"type": "object", "properties": {"error": _STRING, "cause": _STRING}},
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "Bad request",
        401: "No or unknown bearer token",
        403: "Role not allowed",
        404: "No such resource",
        409: "Conflicts with the current state",
        413: "Body too large",
    }
    return {
        str(status): {"description": words[status], **_json_content(_ref("Error"))}
        for status in (400, 401, 403, *statuses)
    }


def _operation(
    operation_id: str,
    summary: str,
    ok: tuple[int, str | None],
    *,
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    stream: bool = False,
    also: tuple[int, str] | None = None,
) -> dict[str, Any]:
    status, schema = ok
    if stream:
        success: dict[str, Any] = {
            "description": "server-sent events",
            "content": {"text/event-stream": {"schema": _STRING}},
        }
    elif schema is None:
        success = {"description": "done"}
    else:
        success = {"description": "OK", **_json_content(_ref(schema))}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters or [],
        "responses": {str(status): success, **_errors(*errors)},
    }
    if also is not None:
        operation["responses"][str(also[0])] = {"description": "OK", **_json_content(_ref(also[1]))}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json_content(_ref(body))}
        operation["responses"].update(_errors(413))
    return operation


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": _NAME}
_ARN_PARAM = {"name": "arn", "in": "path", "required": True, "schema": _EXECUTION_ARN}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})
_TOKEN = _query("nextToken", _STRING)


def openapi_document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dirigent control plane",
            "version": "1",
            "description": "State machines, executions and their live history. "
            "Send Authorization: Bearer TOKEN.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/engine": {
                "get": _operation(
                    "engineStats",
                    "This node's engine worker: work done and how busy its loop is",
                    (200, "EngineStats"),
                ),
            },
            "/api/v1/state-machines": {
                "get": _operation(
                    "listStateMachines",
                    "List state machines",
                    (200, "StateMachineList"),
                    parameters=[_LIMIT, _TOKEN],
                ),
                "post": _operation(
                    "deployStateMachine",
                    "Create a state machine, or update its definition when it exists",
                    (201, "StateMachine"),
                    errors=(409,),
                    body="Deploy",
                    also=(200, "StateMachine"),
                ),
            },
            "/api/v1/state-machines/{name}": {
                "get": _operation(
                    "describeStateMachine",
                    "A state machine with its graph",
                    (200, "StateMachine"),
                    errors=(404,),
                    parameters=[_NAME_PARAM],
                ),
                "delete": _operation(
                    "deleteStateMachine",
                    "Delete a state machine",
                    (204, None),
                    errors=(404,),
                    parameters=[_NAME_PARAM],
                ),
            },
            "/api/v1/state-machines/{name}/graph": {
                "get": _operation(
                    "stateMachineGraph",
                    "States and transitions, for drawing",
                    (200, "Graph"),
                    errors=(404,),
                    parameters=[_NAME_PARAM],
                ),
            },
            "/api/v1/state-machines/{name}/executions": {
                "post": _operation(
                    "startExecution",
                    "Start an execution",
                    (201, "Started"),
                    errors=(404, 409),
                    parameters=[_NAME_PARAM],
                    body="Start",
                ),
            },
            "/api/v1/events": {
                "get": _operation(
                    "streamAllEvents",
                    "Every execution's new history events as server-sent events, resumable "
                    "from a position (Last-Event-ID or after)",
                    (200, None),
                    errors=(400, 404),
                    stream=True,
                    parameters=[
                        _query("after", {"type": "string", "pattern": "^[0-9a-f]+-[0-9]+$"})
                    ],
                ),
            },
            "/api/v1/executions": {
                "get": _operation(
                    "listExecutions",
                    "List executions, newest first",
                    (200, "ExecutionList"),
                    errors=(404,),
                    parameters=[
                        _query("stateMachine", _NAME),
                        _query("status", _STRING),
                        _LIMIT,
                        _TOKEN,
                    ],
                ),
            },
            "/api/v1/executions/{arn}": {
                "get": _operation(
                    "describeExecution",
                    "An execution",
                    (200, "Execution"),
                    errors=(404,),
                    parameters=[_ARN_PARAM],
                ),
            },
            "/api/v1/executions/{arn}/history": {
                "get": _operation(
                    "executionHistory",
                    "History events",
                    (200, "History"),
                    errors=(404,),
                    parameters=[_ARN_PARAM, _LIMIT, _TOKEN, _query("reverse", {"type": "boolean"})],
                ),
            },
            "/api/v1/executions/{arn}/states": {
                "get": _operation(
                    "executionStates",
                    "Each state visit with its input, output and status",
                    (200, "StateRuns"),
                    errors=(404,),
                    parameters=[_ARN_PARAM],
                ),
            },
            "/api/v1/executions/{arn}/events": {
                "get": _operation(
                    "streamExecutionEvents",
                    "History events as server-sent events until the execution stops",
                    (200, None),
                    errors=(404,),
                    stream=True,
                    parameters=[_ARN_PARAM, _query("after", {"type": "integer", "minimum": 0})],
                ),
            },
            "/api/v1/executions/{arn}/stop": {
                "post": _operation(
                    "stopExecution",
                    "Stop a running execution",
                    (200, "Stopped"),
                    errors=(404,),
                    parameters=[_ARN_PARAM],
                    body="Stop",
                ),
            },
            "/api/v1/executions/{arn}/redrive": {
                "post": _operation(
                    "redriveExecution",
                    "Redrive a failed execution",
                    (200, "Redriven"),
                    errors=(404, 409),
                    parameters=[_ARN_PARAM],
                ),
            },
        },
    }
