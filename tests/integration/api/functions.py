"""Python functions the test server registers for Lambda-style Task states."""

from __future__ import annotations

from typing import Any


def echo(payload: Any) -> Any:
    return payload


def nothing(payload: Any) -> None:
    """For ``.waitForTaskToken``: the answer comes later, through SendTaskSuccess."""
    del payload
