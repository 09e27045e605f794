"""Drive :class:`~dirigent.workflow.execution.Execution` by hand: a fixed clock, fixed entropy.

Tests send signals one at a time and look at the events and commands each
``handle`` call returns, which is exactly what the durable engine sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dirigent.asl.model import Json
from dirigent.asl.parser import parse_definition
from dirigent.entropy import SeededEntropy
from dirigent.workflow.context import ExecutionInfo
from dirigent.workflow.execution import Execution, Step
from dirigent.workflow.history import HistoryEvent
from dirigent.workflow.signals import (
    CancelTask,
    Finish,
    ScheduleTask,
    Signal,
    Start,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
)

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:machine:run-1"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:work"
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:review"


class FixedEntropy:
    """Entropy whose random numbers are always ``value`` (for jitter)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.draws = 0

    def uuid4(self) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        return start

    def random_float(self, seed: int | None) -> float:
        self.draws += 1
        return self.value


def task_state(**fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": LAMBDA}
    state.update(fields)
    if "Next" not in state:
        state.setdefault("End", True)
    return state


def machine(states: Mapping[str, Any], start_at: str | None = None, **top: Any) -> dict[str, Any]:
    return {"StartAt": start_at or next(iter(states)), "States": dict(states), **top}


class Driver:
    """One execution, a clock the test moves, and the last step's results."""

    def __init__(self, definition: Mapping[str, Any], *, entropy: Any = None) -> None:
        info = ExecutionInfo(
            execution_arn=EXECUTION_ARN,
            name="run-1",
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:machine",
            state_machine_name="machine",
            start_time=T0,
            input={},
        )
        self.execution = Execution(
            parse_definition(definition), info, entropy=entropy or SeededEntropy(3)
        )
        self.now = T0

    def at(self, seconds: float) -> Driver:
        self.now = T0 + timedelta(seconds=seconds)
        return self

    def send(self, signal: Signal) -> Step:
        return self.execution.handle(signal, self.now)

    def start(self, value: Json = None) -> Step:
        return self.send(Start({} if value is None else value))

    def succeed(self, task: ScheduleTask, output: Json) -> Step:
        return self.send(TaskSucceeded(task.token, output))

    def fail(self, task: ScheduleTask, error: str, cause: str = "") -> Step:
        return self.send(TaskFailed(task.token, error, cause))

    @property
    def history(self) -> list[HistoryEvent]:
        return self.execution.history


def tasks(step: Step) -> list[ScheduleTask]:
    return [c for c in step.commands if isinstance(c, ScheduleTask)]


def timers(step: Step) -> list[StartTimer]:
    return [c for c in step.commands if isinstance(c, StartTimer)]


def cancels(step: Step) -> list[str]:
    return [c.token for c in step.commands if isinstance(c, CancelTask)]


def finish(step: Step) -> Finish | None:
    found = [c for c in step.commands if isinstance(c, Finish)]
    assert len(found) <= 1
    return found[0] if found else None


def types(events: list[HistoryEvent]) -> list[str]:
    return [event.type for event in events]


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]
