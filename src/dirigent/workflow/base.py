"""The state an execution keeps between signals, and the plumbing every step uses.

:class:`ExecutionBase` owns the threads, tokens, timers and the history being
written; it mints ids, arms timers and emits events. The transitions themselves
live in :mod:`dirigent.workflow.fanout` (Parallel and Map) and
:mod:`dirigent.workflow.execution` (everything else). Like them, it performs no
I/O and reads no clock: ``_now`` is the time the shell passed to ``handle``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dirigent.asl.failure import StatesFailure
from dirigent.asl.model import Json, MapState, ParallelState, State, StateMachine, TaskState
from dirigent.asl.scope import Entropy
from dirigent.workflow import context as ctx
from dirigent.workflow.dataflow import Frame
from dirigent.workflow.history import HistoryEvent
from dirigent.workflow.signals import Command, StartTimer
from dirigent.workflow.threads import Thread, machine_index

#: AWS's service quota on the size of any payload an execution passes around.
PAYLOAD_LIMIT_BYTES = 256 * 1024
#: AWS's quota on the events of one execution's history.
HISTORY_LIMIT = 25_000


@dataclass(frozen=True, slots=True)
class Step:
    """What one call of :meth:`Execution.handle` produced."""

    events: list[HistoryEvent]
    commands: list[Command]


class ExecutionBase:
    """An execution's data and the small operations every transition needs."""

    def __init__(
        self,
        machine: StateMachine,
        info: ctx.ExecutionInfo,
        *,
        entropy: Entropy,
        token_prefix: str = "",
        keep_history: bool = True,
        history_limit: int = HISTORY_LIMIT,
        machines: Mapping[str, StateMachine] | None = None,
    ) -> None:
        self.machine = machine
        self.info = info
        self.entropy = entropy
        self.token_prefix = token_prefix
        self.status = "PENDING"
        self.output: Json = None
        self.error: str | None = None
        self.cause: str | None = None
        #: every event when ``keep_history`` is set (the in-process runner), else empty
        self.history: list[HistoryEvent] = []
        self.keep_history = keep_history
        self.history_limit = history_limit
        self.event_count = 0
        # The shell may pass the index it keeps with a cached definition.
        self._machines = machines if machines is not None else machine_index(machine)
        self._next_thread = 0
        self._threads: dict[int, Thread] = {}
        #: the last frame built per thread, and what it was built from (not snapshotted)
        self._frames: dict[int, tuple[tuple[object, ...], Frame]] = {}
        self._context_sections = ctx.execution_sections(info)
        self._ready: deque[int] = deque()
        self._tokens: dict[str, int] = {}
        self._timers: dict[str, tuple[int, str]] = {}
        self._sequence = 0
        self._invocations: dict[str, int] = {}
        self._now: datetime = info.start_time
        self._failed_by_aborted_task = False
        self._redrive_point: dict[str, Any] | None = None
        self._events: list[HistoryEvent] = []
        self._commands: list[Command] = []

    # ------------------------------------------------------------------ plumbing

    def _new_thread(self, key: str, variables: Mapping[str, Json], *, parent: int | None) -> Thread:
        thread = Thread(
            id=self._next_thread,
            machine=self._machines[key],
            machine_key=key,
            variables=dict(variables),
            parent=parent,
        )
        self._next_thread += 1
        self._threads[thread.id] = thread
        return thread

    def _retire(self, thread: Thread) -> None:
        """Forget a finished thread; its parent has taken what it needed."""
        thread.done = True
        self._threads.pop(thread.id, None)
        self._frames.pop(thread.id, None)

    def _mint(self, kind: str) -> str:
        self._sequence += 1
        return f"{self.token_prefix}{kind}-{self._sequence}"

    def _arm(self, thread: Thread, purpose: str, seconds: float) -> str:
        timer = self._mint("timer")
        self._timers[timer] = (thread.id, purpose)
        self._commands.append(StartTimer(timer, self._now + timedelta(seconds=seconds)))
        return timer

    def _last_id(self) -> int:
        return self.event_count

    def _emit(self, event_type: str, previous: int, details: Mapping[str, Any]) -> HistoryEvent:
        self.event_count += 1
        event = HistoryEvent(self.event_count, previous, self._now, event_type, details)
        if self.keep_history:
            self.history.append(event)
        self._events.append(event)
        return event

    def _emit_on(self, thread: Thread, event_type: str, details: Mapping[str, Any]) -> HistoryEvent:
        if thread.silent:
            # Distributed Map iterations run as child executions; their events
            # are not part of this execution's history.
            return HistoryEvent(0, thread.prev_event, self._now, event_type, details)
        event = self._emit(event_type, thread.prev_event, details)
        thread.prev_event = event.id
        return event

    def threads(self) -> Iterator[Thread]:
        return iter(self._threads.values())

    def _cause_of(self, thread: Thread, exc: StatesFailure) -> str:
        if not exc.prefixed:
            return exc.cause
        return (
            f"An error occurred while executing the state '{thread.state_name}' "
            f"(entered at the event id #{thread.entered_event}). {exc.cause}"
        )

    def _frame(self, thread: Thread) -> Frame:
        """What the thread's current state sees; reused while nothing it shows changed."""
        # The token counts only where the context shows it: a Task gets its token
        # when it is scheduled, and its frame is wanted again when it succeeds.
        token = thread.token if thread.token and _wants_token(thread_state(thread)) else None
        key = (
            thread.state_name, thread.entered_time, tuple(thread.retry_counts), token,
            id(thread.raw_input), thread.map_item is None,
        )  # fmt: skip
        cached = self._frames.get(thread.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        frame = self._build_frame(thread)
        self._frames[thread.id] = (key, frame)
        return frame

    def _build_frame(self, thread: Thread) -> Frame:
        state = thread_state(thread)
        retry_count = (
            sum(thread.retry_counts)
            if isinstance(state, TaskState | ParallelState | MapState)
            else None
        )
        context = ctx.build(
            self._context_sections,
            state_name=thread.state_name,
            entered_time=thread.entered_time or self._now,
            retry_count=retry_count,
            task_token=thread.token if thread.token and _wants_token(state) else None,
            map_item=thread.map_item,
        )
        return Frame(state, thread.raw_input, context, thread.variables, self.entropy)

    def _cancel_thread_timers(self, thread: Thread) -> None:
        for timer in (thread.timer, thread.heartbeat_timer):
            if timer is not None:
                self._timers.pop(timer, None)
        thread.timer = None
        thread.heartbeat_timer = None


def thread_state(thread: Thread) -> State:
    return thread.machine.states[thread.state_name]


def _wants_token(state: State) -> bool:
    return isinstance(state, TaskState) and state.resource.endswith(".waitForTaskToken")
