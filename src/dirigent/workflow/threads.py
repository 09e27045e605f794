"""The mutable state of one execution's paths of control, and its snapshot form.

A thread is the top level, a Parallel branch or a Map iteration. Its state is
plain data, so the durable engine can fold an execution into a JSON snapshot
after every transition and resume it after a crash. State machines are not
copied into snapshots: a thread names its machine by a key (``""`` for the
top level, ``"/States/P/Branches/0"``, ``"/States/M/ItemProcessor"``) that the
restored execution looks up in the parsed definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from dirigent.asl.model import Json, MapState, ParallelState, StateMachine


@dataclass(slots=True)
class Fanout:
    """The children of a running Parallel or Map state and what they returned."""

    items: list[Json]
    results: list[Json]
    limit: int
    started: int = 0
    finished: int = 0
    failed: int = 0
    running: set[int] = field(default_factory=set)
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None
    is_map: bool = True
    #: a distributed Map's iterations are child executions with their own histories
    distributed: bool = False

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FANOUT_FIELDS}
        data["running"] = sorted(self.running)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fanout:
        return cls(**{**data, "running": set(data["running"])})


_FANOUT_FIELDS = tuple(f.name for f in fields(Fanout))


@dataclass(slots=True)
class Thread:
    """One path of control: the top level, a Parallel branch or a Map iteration."""

    id: int
    machine: StateMachine
    machine_key: str
    variables: dict[str, Json]
    parent: int | None = None
    child_index: int = 0
    map_item: tuple[int, Json] | None = None
    state_name: str = ""
    raw_input: Json = None
    effective: Json = None
    arguments: Json = None
    prev_event: int = 0
    entered_event: int = 0
    entered_time: datetime | None = None
    phase: str = "enter"
    token: str | None = None
    timer: str | None = None
    heartbeat_timer: str | None = None
    attempt: int = 0
    retry_counts: list[int] = field(default_factory=list)
    fanout: Fanout | None = None
    done: bool = False
    #: set when the state fails because its branches or iterations did
    fanout_failed: bool = False
    #: a distributed Map iteration: its events belong to its own child execution
    silent: bool = False

    def to_json(self) -> dict[str, Any]:
        # Every transition snapshots its threads: the field names are worked out once.
        data: dict[str, Any] = {name: getattr(self, name) for name in _THREAD_FIELDS}
        if self.entered_time is not None:
            data["entered_time"] = self.entered_time.isoformat()
        if self.fanout is not None:
            data["fanout"] = self.fanout.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], machines: Mapping[str, StateMachine]) -> Thread:
        values = dict(data)
        values["machine"] = machines[values["machine_key"]]
        if values.get("entered_time") is not None:
            values["entered_time"] = datetime.fromisoformat(values["entered_time"])
        if values.get("fanout") is not None:
            values["fanout"] = Fanout.from_json(values["fanout"])
        if values.get("map_item") is not None:
            values["map_item"] = tuple(values["map_item"])
        return cls(**values)


#: what a thread's snapshot holds: everything but the machine, named by ``machine_key``
_THREAD_FIELDS = tuple(f.name for f in fields(Thread) if f.name != "machine")


def machine_index(machine: StateMachine) -> dict[str, StateMachine]:
    """Every machine nested in ``machine`` by its key (see the module docstring)."""
    return dict(_walk(machine, ""))


def _walk(machine: StateMachine, key: str) -> Iterator[tuple[str, StateMachine]]:
    yield key, machine
    for name, state in machine.states.items():
        escaped = name.replace("~", "~0").replace("/", "~1")
        if isinstance(state, ParallelState):
            for index, branch in enumerate(state.branches):
                yield from _walk(branch, f"{key}/States/{escaped}/Branches/{index}")
        elif isinstance(state, MapState):
            yield from _walk(state.item_processor, f"{key}/States/{escaped}/ItemProcessor")


def child_key(parent: Thread, state_name: str, branch: int | None) -> str:
    escaped = state_name.replace("~", "~0").replace("/", "~1")
    if branch is None:
        return f"{parent.machine_key}/States/{escaped}/ItemProcessor"
    return f"{parent.machine_key}/States/{escaped}/Branches/{branch}"
