"""What the shell tells the core (signals) and what the core asks of the shell (commands).

Signals and commands are frozen dataclasses. A task is identified by a token the
core mints (``<execution>#<sequence>``); a timer by an id the core mints. The
shell must echo them back unchanged; a signal naming a token or timer the core
no longer waits for is ignored, which makes late or duplicated deliveries
harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dirigent.asl.model import Json

# --------------------------------------------------------------------------- signals


@dataclass(frozen=True, slots=True)
class Start:
    """Begin the execution with its input."""

    input: Json


@dataclass(frozen=True, slots=True)
class TaskStarted:
    token: str
    #: activities report the worker that took the task
    worker_name: str | None = None


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    token: str
    output: Json


@dataclass(frozen=True, slots=True)
class TaskFailed:
    token: str
    error: str | None
    cause: str | None


@dataclass(frozen=True, slots=True)
class TaskHeartbeat:
    token: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    """``StopExecution``: abort whatever runs."""

    error: str | None = None
    cause: str | None = None


Signal = Start | TaskStarted | TaskSucceeded | TaskFailed | TaskHeartbeat | TimerFired | Stop

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class ScheduleTask:
    """Run a Task state's work and report back with the token.

    ``kind`` is the dispatch family (``lambda``, ``lambda:invoke``, ``activity``,
    ``http``, ``states:startExecution``, ``service``); ``wait_for_token`` is set for
    ``.waitForTaskToken`` integrations, ``sync`` for ``.sync``/``.sync:2``.
    ``idempotency_key`` is stable for one attempt of one state of one execution.
    """

    token: str
    state_name: str
    resource: str
    kind: str
    parameters: Json
    attempt: int
    idempotency_key: str
    timeout_seconds: int | None = None
    heartbeat_seconds: int | None = None
    wait_for_token: bool = False
    sync: str | None = None


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer_id: str
    due: datetime


@dataclass(frozen=True, slots=True)
class CancelTask:
    """The core no longer needs this task (stopped, timed out, branch failed)."""

    token: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The execution reached a terminal status."""

    status: str
    output: Json = None
    error: str | None = None
    cause: str | None = None


Command = ScheduleTask | StartTimer | CancelTask | Finish
