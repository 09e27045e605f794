"""Signals and commands as JSON text, for the signal queue and the task table."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from dirigent.asl.jsontext import compact_encoder
from dirigent.workflow.signals import (
    ScheduleTask,
    Signal,
    Start,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)

_SIGNALS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (Start, Stop, TaskStarted, TaskSucceeded, TaskFailed, TaskHeartbeat, TimerFired)
}

#: each signal type's name and fields, worked out once (every result is encoded)
_SIGNAL_FIELDS: dict[type[Any], tuple[str, tuple[str, ...]]] = {
    cls: (name, tuple(f.name for f in fields(cls))) for name, cls in _SIGNALS.items()
}

#: the engine's own JSON text (queue, task table, history details, snapshots):
#: compact and ASCII, built once rather than per call
encode_json = compact_encoder(ensure_ascii=True, allow_nan=True)

#: a signal the engine itself interprets (it is not given to the core)
REDRIVE = "Redrive"


def encode_signal(signal: Signal) -> str:
    # Field by field rather than asdict(), which deep-copies a result's whole
    # payload only for json to walk it again; signals hold JSON values only.
    name, names = _SIGNAL_FIELDS[type(signal)]
    data: dict[str, Any] = {"type": name}
    for field_name in names:
        data[field_name] = getattr(signal, field_name)
    return encode_json(data)


def encode_redrive() -> str:
    return json.dumps({"type": REDRIVE})


def decode_signal(text: str) -> Signal | str:
    """The signal, or the name of an engine-level signal such as :data:`REDRIVE`."""
    data = json.loads(text)
    kind = data.pop("type")
    if kind == REDRIVE:
        return REDRIVE
    cls = _SIGNALS[kind]
    signal: Signal = cls(**data)
    return signal


_TASK_FIELDS = tuple(f.name for f in fields(ScheduleTask))


def encode_task(command: ScheduleTask) -> str:
    # Field by field rather than asdict(), which deep-copies the parameters first.
    return encode_json({name: getattr(command, name) for name in _TASK_FIELDS})


def decode_task(text: str) -> ScheduleTask:
    return ScheduleTask(**json.loads(text))


def epoch(moment: datetime) -> float:
    return moment.timestamp()
