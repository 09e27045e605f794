"""Functions the test engine nodes serve; each is deterministic in its input."""

from __future__ import annotations

import time
from typing import Any


def add_one(event: Any) -> Any:
    return {"value": event["value"] + 1}


def double(event: Any) -> Any:
    return event * 2


def slow_square(event: Any) -> Any:
    time.sleep(0.02)
    return event * event


def noop(event: Any) -> Any:
    return event


REGISTRY = {"add_one": add_one, "double": double, "slow_square": slow_square, "noop": noop}
