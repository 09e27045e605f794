"""The details of Task history events, per event family, with AWS's field names.

A Lambda function ARN is recorded as ``LambdaFunction*`` events whose details
carry the function ARN; an activity as ``Activity*``; every service integration
as ``Task*`` with ``resourceType``/``resource`` split out of the ARN.
"""

from __future__ import annotations

from typing import Any

from dirigent.asl.jsontext import dumps
from dirigent.asl.model import Json
from dirigent.workflow.history import payload, payload_text
from dirigent.workflow.resources import TaskResource


def _resource_fields(resource: TaskResource) -> dict[str, Any]:
    if resource.event_family == "Task":
        return {"resourceType": resource.resource_type, "resource": resource.resource}
    return {}


def scheduled(
    resource: TaskResource, parameters: Json, timeout: int | None, heartbeat: int | None
) -> dict[str, Any]:
    if resource.event_family == "Task":
        details: dict[str, Any] = {
            **_resource_fields(resource),
            "region": resource.region,
            "parameters": dumps(parameters),
        }
    else:
        details = {"resource": resource.arn, **payload("input", parameters)}
    if timeout is not None:
        details["timeoutInSeconds"] = timeout
    if heartbeat is not None and resource.event_family != "LambdaFunction":
        details["heartbeatInSeconds"] = heartbeat
    return details


def started(resource: TaskResource, worker_name: str | None) -> dict[str, Any]:
    if resource.event_family == "Activity":
        return {"workerName": worker_name} if worker_name else {}
    return _resource_fields(resource)


def succeeded(resource: TaskResource, output_text: str) -> dict[str, Any]:
    """``output_text``: the output's compact JSON text (its size is checked with it)."""
    return {**_resource_fields(resource), **payload_text("output", output_text)}


def failed(resource: TaskResource, error: str | None, cause: str | None) -> dict[str, Any]:
    details = _resource_fields(resource)
    if error is not None:
        details["error"] = error
    if cause is not None:
        details["cause"] = cause
    return details


def timed_out(resource: TaskResource, error: str) -> dict[str, Any]:
    return {**_resource_fields(resource), "error": error, "cause": ""}
