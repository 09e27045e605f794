"""The Python callables an application declares for its Lambda-style Task states.

A function is named in a Task's ``Resource`` (``arn:aws:lambda:...:function:NAME``)
or in ``arn:aws:states:::lambda:invoke``'s ``FunctionName``, and declared by
the application as ``NAME: "module:attribute"``. A callable takes the task
input and, if it accepts a second argument, a :class:`InvocationContext` with
the idempotency key that makes at-least-once delivery safe.
"""

from __future__ import annotations

import importlib
import inspect
import json
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dirigent.errors import DirigentError


@dataclass(frozen=True, slots=True)
class InvocationContext:
    """What a function may want to know about the invocation it serves."""

    function_name: str
    execution_arn: str
    state_name: str
    attempt: int
    #: the same for every delivery of one attempt; use it to make effects idempotent
    idempotency_key: str
    #: set for ``.waitForTaskToken`` tasks: the token to answer with later
    task_token: str | None = None


class FunctionNotFound(DirigentError):
    pass


class FunctionRegistry:
    def __init__(self, functions: Mapping[str, Callable[..., Any] | str] | None = None) -> None:
        self._declared: dict[str, Callable[..., Any] | str] = dict(functions or {})
        self._loaded: dict[str, tuple[Callable[..., Any], bool]] = {}

    def register(self, name: str, function: Callable[..., Any] | str) -> None:
        self._declared[name] = function
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._declared)

    def resolve(self, name: str) -> tuple[Callable[..., Any], bool]:
        """The callable and whether it takes a context argument."""
        if name in self._loaded:
            return self._loaded[name]
        target = self._declared.get(name)
        if target is None:
            raise FunctionNotFound(name)
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            try:
                function = getattr(importlib.import_module(module_name), attribute)
            except (ImportError, AttributeError) as exc:
                raise FunctionNotFound(f"{name} ({target}): {exc}") from exc
        else:
            function = target
        try:
            wants_context = len(inspect.signature(function).parameters) >= 2
        except (TypeError, ValueError):
            wants_context = False
        self._loaded[name] = (function, wants_context)
        return self._loaded[name]


def function_name(resource: str, parameters: Any) -> str:
    """The function a Lambda-style resource names (a name, partial ARN or full ARN)."""
    if resource.startswith("arn:aws:lambda:") or ":function:" in resource:
        name = resource
    elif isinstance(parameters, dict):
        name = str(parameters.get("FunctionName", ""))
    else:
        name = ""
    parts = name.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return name


def lambda_error(exc: BaseException) -> tuple[str, str]:
    """Lambda's error name and cause (a JSON envelope) for an exception a function raised."""
    cause = json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )
    return type(exc).__name__, cause


def invoke_envelope(payload: Any) -> dict[str, Any]:
    """The response ``arn:aws:states:::lambda:invoke`` gives a Task (``Payload`` inside)."""
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {"HttpStatusCode": 200},
        "SdkResponseMetadata": {},
        "StatusCode": 200,
    }
