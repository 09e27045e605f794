"""Running the tasks this node owns: functions and HTTP calls, in a worker pool.

Each runner takes the ScheduleTask command and returns the signals to deliver
(``TaskStarted`` and a result). A ``.waitForTaskToken`` task returns only
``TaskStarted``: its result comes later through ``SendTaskSuccess``. Every
invocation carries the command's idempotency key, so a task run again after a
crash (delivery is at least once) can be recognised by the service it calls.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from dirigent.asl.jsontext import dumps_foreign
from dirigent.engine.functions import (
    FunctionNotFound,
    FunctionRegistry,
    InvocationContext,
    function_name,
    invoke_envelope,
    lambda_error,
)
from dirigent.workflow.signals import ScheduleTask, Signal, TaskFailed, TaskStarted, TaskSucceeded

#: a task's endpoint -> the URL to call and the HTTP proxy to call it through (or None);
#: under ``dirigent up`` service names go through the mesh, which is that proxy
Resolver = Callable[[str], tuple[str, str | None]]


def direct(endpoint: str) -> tuple[str, str | None]:
    return endpoint, None


IDEMPOTENCY_HEADER = "Idempotency-Key"


def run_task(
    command: ScheduleTask, functions: FunctionRegistry, resolve: Resolver, execution_arn: str
) -> list[Signal]:
    started: Signal = TaskStarted(command.token)
    if command.kind in ("lambda", "lambda:invoke"):
        return [started, *_run_function(command, functions, execution_arn)]
    if command.kind == "http":
        return [started, *_run_http(command, resolve)]
    return [
        started,
        TaskFailed(command.token, "States.Runtime", f"no runner for task kind {command.kind!r}"),
    ]


def _run_function(
    command: ScheduleTask, functions: FunctionRegistry, execution_arn: str
) -> list[Signal]:
    name = function_name(command.resource, command.parameters)
    try:
        function, wants_context = functions.resolve(name)
    except FunctionNotFound as exc:
        return [
            TaskFailed(
                command.token,
                "Lambda.ResourceNotFoundException",
                f"Function not found: {name} ({exc}); declare it under "
                "`functions` in dirigent.yaml",
            )
        ]
    event = command.parameters
    if command.kind == "lambda:invoke":
        event = command.parameters.get("Payload") if isinstance(command.parameters, dict) else None
    context = InvocationContext(
        function_name=name,
        execution_arn=execution_arn,
        state_name=command.state_name,
        attempt=command.attempt,
        idempotency_key=command.idempotency_key,
        task_token=command.token if command.wait_for_token else None,
    )
    try:
        result = function(event, context) if wants_context else function(event)
        # The result must be JSON, as a Lambda's is; anything else is the function's fault.
        dumps_foreign(result)
    except BaseException as exc:  # user code (even sys.exit): its failure is the task's
        error, cause = lambda_error(exc)
        return [TaskFailed(command.token, error, cause)]
    if command.wait_for_token:
        return []
    if command.kind == "lambda:invoke":
        result = invoke_envelope(result)
    return [TaskSucceeded(command.token, result)]


def _run_http(command: ScheduleTask, resolve: Resolver) -> list[Signal]:
    params: dict[str, Any] = command.parameters if isinstance(command.parameters, dict) else {}
    endpoint = str(params.get("ApiEndpoint", ""))
    method = str(params.get("Method", "GET")).upper()
    query = params.get("QueryParameters") or {}
    url, proxy = resolve(endpoint)
    if query:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query, doseq=True)
    headers = {str(k): str(v) for k, v in (params.get("Headers") or {}).items()}
    headers.setdefault(IDEMPOTENCY_HEADER, command.idempotency_key)
    if command.wait_for_token:
        headers.setdefault("X-Dirigent-Task-Token", command.token)
    body = params.get("RequestBody")
    data: bytes | None = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    # An explicit opener either way: urllib would otherwise honour this process's
    # own HTTP_PROXY variables, which are not the engine's to follow.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy} if proxy else {})
    )
    try:
        with opener.open(request, timeout=command.timeout_seconds or 60) as response:
            status, reason = response.status, response.reason
            raw = response.read()
            response_headers = dict(response.headers.items())
    except urllib.error.HTTPError as exc:
        status, reason = exc.code, exc.reason
        raw = exc.read()
        response_headers = dict(exc.headers.items())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [
            TaskFailed(
                command.token, "States.Http.Socket", f"The HTTP request to {endpoint} failed: {exc}"
            )
        ]
    text = raw.decode("utf-8", "replace")
    try:
        response_body: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        response_body = text
    result = {
        "Headers": response_headers,
        "ResponseBody": response_body,
        "StatusCode": status,
        "StatusText": reason,
    }
    if status >= 400:
        return [TaskFailed(command.token, f"States.Http.StatusCode.{status}", json.dumps(result))]
    if command.wait_for_token:
        return []
    return [TaskSucceeded(command.token, result)]
