"""What a Task state's ``Resource`` ARN asks for, and how AWS names its events.

AWS records a plain Lambda ARN (``arn:aws:lambda:...:function:NAME``) as
``LambdaFunction*`` events and an activity ARN as ``Activity*`` events; every
service integration (``arn:aws:states:::SERVICE:ACTION[.sync|.waitForTaskToken]``)
as ``Task*`` events with ``resourceType``/``resource`` split out of the ARN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

_WAIT_FOR_TOKEN = ".waitForTaskToken"


@dataclass(frozen=True, slots=True)
class TaskResource:
    arn: str
    #: lambda | lambda:invoke | activity | http | states:startExecution | service
    kind: str
    #: the history family: LambdaFunction | Activity | Task
    event_family: str
    #: for ``Task*`` events: AWS's ``resourceType`` and ``resource``
    resource_type: str
    resource: str
    region: str
    wait_for_token: bool = False
    sync: str | None = None


@lru_cache(maxsize=4096)  # a definition names few resources, each read at every step
def classify(arn: str, *, default_region: str = "us-east-1") -> TaskResource:
    parts = arn.split(":")
    service = parts[2] if len(parts) > 2 else ""
    region = parts[3] if len(parts) > 3 and parts[3] else default_region
    if service == "lambda" and len(parts) >= 7 and parts[5] == "function":
        return TaskResource(arn, "lambda", "LambdaFunction", "lambda", arn, region)
    if service == "states" and len(parts) >= 7 and parts[5] == "activity":
        return TaskResource(arn, "activity", "Activity", "activity", arn, region)
    # arn:aws:states:::<service>:<action>[.<pattern>]
    tail = parts[6:] if len(parts) > 6 else []
    resource_type = parts[5] if len(parts) > 5 else service
    action = ":".join(tail)
    wait_for_token = action.endswith(_WAIT_FOR_TOKEN)
    if wait_for_token:
        action = action.removesuffix(_WAIT_FOR_TOKEN)
    sync: str | None = None
    for suffix in (".sync:2", ".sync"):
        if action.endswith(suffix):
            sync = suffix.removeprefix(".")
            action = action.removesuffix(suffix)
            break
    if resource_type == "lambda" and action == "invoke":
        kind = "lambda:invoke"
    elif resource_type == "http" and action == "invoke":
        kind = "http"
    elif resource_type == "states" and action == "startExecution":
        kind = "states:startExecution"
    else:
        kind = "service"
    resource = action + (f".{sync}" if sync else "") + (_WAIT_FOR_TOKEN if wait_for_token else "")
    return TaskResource(
        arn, kind, "Task", resource_type, resource, region, wait_for_token=wait_for_token, sync=sync
    )
