"""The AWS JSON 1.0 protocol of Step Functions, as pure translation.

Decoding: an ``X-Amz-Target`` names the action; the body must be one JSON
object whose members have the types the Step Functions API model gives them.
Encoding: response dictionaries become JSON with dates as epoch seconds; a
failure becomes AWS's error shape ``{"__type": CODE, "message": TEXT}`` with
AWS's HTTP status, which boto3 and the AWS CLI turn back into their own
exception classes.

Errors, all :class:`ApiError` with a ``code`` and ``status``:

    ApiError
    ├── UnknownOperationException       (400) the target names no action
    ├── SerializationException          (400) not JSON, not an object, a member of the wrong type
    ├── ValidationException             (400) a required member is missing
    ├── RequestEntityTooLargeException  (413) the body is larger than the server reads
    ├── AccessDeniedException           (400) the caller's role does not allow the action
    └── the SigV4 rejections            (400/403) see :mod:`dirigent.api.sigv4`

This module must never touch the engine, a socket or a clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from dirigent.errors import DirigentError

TARGET_PREFIX = "AWSStepFunctions."
CONTENT_TYPE = "application/x-amz-json-1.0"
#: the largest body read: a 1 MiB definition escaped into JSON, with room to spare
MAX_BODY_BYTES = 4 * 1024 * 1024

Kind = Literal["string", "integer", "boolean", "list", "object"]
_PY_TYPES: dict[Kind, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}


class ApiError(DirigentError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _shape(required: str = "", **optional: Kind) -> tuple[frozenset[str], dict[str, Kind]]:
    """``required`` lists string members that must be present; ``optional`` types the rest."""
    names = required.split()
    return frozenset(names), {**dict.fromkeys(names, "string"), **optional}


_LIST: dict[str, Kind] = {"maxResults": "integer", "nextToken": "string"}

#: every action served, with its required members and the JSON type of each member
SHAPES: dict[str, tuple[frozenset[str], dict[str, Kind]]] = {
    "CreateStateMachine": _shape(
        "name definition",
        roleArn="string",
        type="string",
        loggingConfiguration="object",
        tracingConfiguration="object",
        encryptionConfiguration="object",
        tags="list",
        publish="boolean",
        versionDescription="string",
    ),
    "UpdateStateMachine": _shape(
        "stateMachineArn",
        definition="string",
        roleArn="string",
        loggingConfiguration="object",
        tracingConfiguration="object",
        encryptionConfiguration="object",
        publish="boolean",
        versionDescription="string",
    ),
    "DeleteStateMachine": _shape("stateMachineArn"),
    "DescribeStateMachine": _shape("stateMachineArn", includedData="string"),
    "DescribeStateMachineForExecution": _shape("executionArn", includedData="string"),
    "ListStateMachines": _shape(**_LIST),
    "ValidateStateMachineDefinition": _shape(
        "definition", type="string", severity="string", maxResults="integer"
    ),
    "PublishStateMachineVersion": _shape(
        "stateMachineArn", revisionId="string", description="string"
    ),
    "ListStateMachineVersions": _shape("stateMachineArn", **_LIST),
    "DeleteStateMachineVersion": _shape("stateMachineVersionArn"),
    "CreateStateMachineAlias": _shape("name", description="string", routingConfiguration="list"),
    "DescribeStateMachineAlias": _shape("stateMachineAliasArn"),
    "ListStateMachineAliases": _shape("stateMachineArn", **_LIST),
    "UpdateStateMachineAlias": _shape(
        "stateMachineAliasArn", description="string", routingConfiguration="list"
    ),
    "DeleteStateMachineAlias": _shape("stateMachineAliasArn"),
    "StartExecution": _shape(
        "stateMachineArn", name="string", input="string", traceHeader="string"
    ),
    "StartSyncExecution": _shape(
        "stateMachineArn",
        name="string",
        input="string",
        traceHeader="string",
        includedData="string",
    ),
    "DescribeExecution": _shape("executionArn", includedData="string"),
    "ListExecutions": _shape(
        stateMachineArn="string",
        statusFilter="string",
        mapRunArn="string",
        redriveFilter="string",
        **_LIST,
    ),
    "GetExecutionHistory": _shape(
        "executionArn", reverseOrder="boolean", includeExecutionData="boolean", **_LIST
    ),
    "StopExecution": _shape("executionArn", error="string", cause="string"),
    "RedriveExecution": _shape("executionArn", clientToken="string"),
    "CreateActivity": _shape("name", tags="list", encryptionConfiguration="object"),
    "DeleteActivity": _shape("activityArn"),
    "DescribeActivity": _shape("activityArn"),
    "ListActivities": _shape(**_LIST),
    "GetActivityTask": _shape("activityArn", workerName="string"),
    "SendTaskSuccess": _shape("taskToken output"),
    "SendTaskFailure": _shape("taskToken", error="string", cause="string"),
    "SendTaskHeartbeat": _shape("taskToken"),
    "TestState": _shape(
        "definition",
        roleArn="string",
        input="string",
        inspectionLevel="string",
        revealSecrets="boolean",
        variables="string",
    ),
    "TagResource": _shape("resourceArn", tags="list"),
    "UntagResource": _shape("resourceArn", tagKeys="list"),
    "ListTagsForResource": _shape("resourceArn"),
    "DescribeMapRun": _shape("mapRunArn"),
    "ListMapRuns": _shape("executionArn", **_LIST),
}
# The lists are required members too; their type comes from the keyword above.
_REQUIRED_LISTS = {
    "TagResource": "tags",
    "UntagResource": "tagKeys",
    "CreateStateMachineAlias": "routingConfiguration",
}
for _action, _member in _REQUIRED_LISTS.items():
    SHAPES[_action] = (SHAPES[_action][0] | {_member}, SHAPES[_action][1])


def action_of(target: str | None) -> str:
    """The action an ``X-Amz-Target`` header names, or ``UnknownOperationException``."""
    if target is None or not target.startswith(TARGET_PREFIX):
        raise ApiError("UnknownOperationException", f"Unknown operation {target or ''}".strip())
    action = target.removeprefix(TARGET_PREFIX)
    if action not in SHAPES:
        raise ApiError("UnknownOperationException", f"Unknown operation {action}")
    return action


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def decode_request(action: str, body: bytes) -> dict[str, Any]:
    """The request members, checked against the action's shape."""
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ApiError("SerializationException", f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ApiError(
            "SerializationException",
            f"Expected a JSON object as the request body, found {_json_type(document)}",
        )
    required, kinds = SHAPES[action]
    for name, value in document.items():
        kind = kinds.get(name)
        if kind is None or value is None:
            continue  # AWS ignores members it does not model, and null means absent
        if not isinstance(value, _PY_TYPES[kind]) or (
            kind == "integer" and isinstance(value, bool)
        ):
            raise ApiError(
                "SerializationException",
                f"Member '{name}' must be a {kind}, found {_json_type(value)}",
            )
    missing = sorted(name for name in required if document.get(name) is None)
    if missing:
        details = "; ".join(
            f"Value null at '{name}' failed to satisfy constraint: Member must not be null"
            for name in missing
        )
        raise ApiError(
            "ValidationException",
            f"{len(missing)} validation error{'s' if len(missing) > 1 else ''} detected: {details}",
        )
    return {name: value for name, value in document.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()  # the JSON protocols send dates as epoch seconds
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def encode_response(response: Mapping[str, Any]) -> bytes:
    return json.dumps(_plain(response), separators=(",", ":")).encode("utf-8")


def encode_error(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message}).encode("utf-8")
