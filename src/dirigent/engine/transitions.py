"""One durable transition: signals in, core folded, everything written in one transaction.

:func:`advance` restores an execution from its snapshot, feeds it the signals
that are due, and writes back in the caller's transaction the history events,
the new snapshot, the timers and tasks the core asked for, and the removal of
the signals it consumed. Either all of it commits or none of it does, so a
crash at any point leaves the execution exactly as it was before or after the
transition, never in between, and no signal is applied twice.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from dirigent.asl.model import StateMachine
from dirigent.asl.parser import parse_definition
from dirigent.asl.scope import Entropy
from dirigent.engine import codec
from dirigent.engine.errors import ServiceError
from dirigent.store.port import Transaction
from dirigent.store.records import EventRecord, ExecutionRecord, SignalRecord, TaskRecord
from dirigent.workflow.context import ExecutionInfo
from dirigent.workflow.execution import Execution
from dirigent.workflow.signals import (
    CancelTask,
    Command,
    Finish,
    ScheduleTask,
    Signal,
    StartTimer,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)
from dirigent.workflow.threads import machine_index

#: task kinds this engine runs itself, in its worker pool
LOCAL_KINDS = ("lambda", "lambda:invoke", "http")

_compact = codec.encode_json


@lru_cache(maxsize=256)
def machine_for(definition: str) -> tuple[StateMachine, dict[str, StateMachine]]:
    """A definition parsed, with its nested machines indexed: once per process.

    Definitions are immutable once stored, so the cache never goes stale.
    """
    machine = parse_definition(definition)
    return machine, machine_index(machine)


def info_for(record: ExecutionRecord) -> ExecutionInfo:
    return ExecutionInfo(
        execution_arn=record.arn,
        name=record.name,
        state_machine_arn=record.machine_arn,
        state_machine_name=record.machine_arn.rsplit(":", 1)[-1],
        start_time=datetime.fromtimestamp(record.started_at, UTC),
        input=json.loads(record.input),
        role_arn=record.role_arn,
        redrive_count=record.redrive_count,
    )


def load(record: ExecutionRecord, entropy: Entropy, resident: Resident | None = None) -> Execution:
    if resident is not None:
        kept = resident.take(record)
        if kept is not None:
            return kept
    machine, machines = machine_for(record.definition)
    info = info_for(record)
    if record.snapshot is None:
        return Execution(
            machine,
            info,
            entropy=entropy,
            token_prefix=record.token_prefix,
            keep_history=False,
            machines=machines,
        )
    return Execution.restore(
        machine,
        info,
        json.loads(record.snapshot),
        entropy=entropy,
        token_prefix=record.token_prefix,
        machines=machines,
    )


class Resident:
    """Executions kept in memory between their transitions on this node.

    Restoring an execution from its snapshot (parse the JSON, rebuild its
    threads) costs about as much as the transition itself. An execution is kept
    together with the snapshot text its last transition wrote, and handed out
    again only when the row just claimed holds that very text: if anything else
    advanced it since (another node, a stop), or that transition never
    committed, the texts differ and the execution is restored from the row as
    usual. Taking removes it, so two threads never share one.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._kept: dict[str, tuple[str, Execution]] = {}
        self._lock = threading.Lock()

    def take(self, record: ExecutionRecord) -> Execution | None:
        with self._lock:
            kept = self._kept.pop(record.arn, None)
        if kept is None or kept[0] != record.snapshot:
            return None
        return kept[1]

    def keep(self, arn: str, snapshot: str, execution: Execution) -> None:
        if execution.finished:
            return
        with self._lock:
            self._kept[arn] = (snapshot, execution)
            if len(self._kept) > self._capacity:
                # The oldest kept first: dicts keep insertion order.
                del self._kept[next(iter(self._kept))]


@dataclass(slots=True)
class Outcome:
    """What a batch of transitions left for the shell to do after commit."""

    #: tasks this node claimed and must now run
    local_tasks: list[TaskRecord] = field(default_factory=list)
    #: executions that received new signals due now (advance them again soon)
    touched: set[str] = field(default_factory=set)
    advanced: int = 0
    finished: list[str] = field(default_factory=list)
    #: timers were set (the loop must look again at when to wake)
    timers: bool = False


@dataclass(slots=True)
class Writes:
    """The rows a batch of transitions writes, gathered so that each kind goes
    to the store in one statement rather than one per transition.

    Flush before the transaction reads anything these rows could change (the
    signal queue above all: a consumed signal must not be claimed again).
    """

    #: executions started in this batch, inserted ahead of every other row
    started: list[ExecutionRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    executions: list[ExecutionRecord] = field(default_factory=list)
    signals: list[tuple[str, float, str]] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    #: tokens of task rows that are done with (finished or cancelled)
    done: list[str] = field(default_factory=list)
    #: tokens of tasks that ran and now wait for their token to come back
    tasks_waiting: list[str] = field(default_factory=list)
    #: starts put their execution's row here (one statement for all) rather
    #: than insert it at once. A name taken already then fails the whole
    #: transaction, not its one start: only the worker's loop, which then runs
    #: the same batch again with this off, sets it (see Worker.run_once)
    defer_starts: bool = False

    def flush(self, tx: Transaction) -> None:
        if not (
            self.consumed or self.started or self.events or self.executions or self.signals
            or self.tasks or self.done or self.tasks_waiting
        ):  # fmt: skip
            return  # nothing to write: no pipeline (on PostgreSQL, a round trip) either
        # Rows put before rows deleted: a task scheduled and cancelled within the
        # batch must end up gone.
        with tx.pipelined():
            tx.delete_signals(self.consumed)
            if self.started:
                tx.insert_executions(self.started)
            tx.append_events(self.events)
            tx.update_executions(self.executions)
            tx.add_signals(self.signals)
            tx.put_tasks(self.tasks)
            tx.delete_tasks(self.done)
            for token in self.tasks_waiting:
                tx.set_task_status(token, "waiting", None, None)
        self.started, self.events, self.executions, self.signals = [], [], [], []
        self.consumed, self.tasks, self.done, self.tasks_waiting = [], [], [], []


@dataclass(frozen=True, slots=True)
class Context:
    """What a transition needs from the engine around it."""

    worker: str
    entropy: Entropy
    lease_seconds: float
    #: whether this node runs the local tasks it schedules (a node that only
    #: serves the API leaves them for the nodes whose workers run)
    runs_tasks: bool
    start_child: Callable[[Transaction, ExecutionRecord, ScheduleTask, float, Outcome], None]
    #: executions kept in memory between transitions (None: always restored)
    resident: Resident | None = None


def advance(
    tx: Transaction,
    record: ExecutionRecord,
    now: float,
    ctx: Context,
    outcome: Outcome,
    *,
    extra: Sequence[Signal] = (),
    redrive: bool = False,
    fresh: bool = False,
    due: Sequence[SignalRecord] | None = None,
    writes: Writes | None = None,
) -> ExecutionRecord:
    """Apply every due signal (and ``extra``) to one execution, inside ``tx``.

    ``fresh``: the execution was inserted in this very transaction, so no signal
    can be waiting for it and the queue is not read. ``due``: its due signals,
    read already by the caller (for a batch of executions at once). ``writes``:
    gather the rows there for the caller to flush, instead of writing them now.
    """
    if due is None:
        due = [] if fresh else tx.due_signals(record.arn, now)
    if not due and not extra and not redrive:
        # Another node consumed the signals between the claim and now.
        return record
    execution = load(record, ctx.entropy, ctx.resident)
    moment = datetime.fromtimestamp(now, UTC)
    events = []
    commands: list[Command] = []
    signals: list[Signal | str] = [codec.decode_signal(s.body) for s in due]
    signals.extend(extra)
    if redrive:
        signals.insert(0, codec.REDRIVE)
    for signal in signals:
        if isinstance(signal, str):
            if signal != codec.REDRIVE:
                continue
            step = execution.redrive(moment)
        else:
            step = execution.handle(signal, moment)
        events.extend(step.events)
        commands.extend(step.commands)
    batch = Writes() if writes is None else writes
    batch.consumed.extend(s.id for s in due)
    # The core stamps a step's events with the moment it was given: converted once.
    stamp = moment.timestamp()
    batch.events.extend(
        [
            EventRecord(
                record.arn,
                e.id,
                e.previous_event_id,
                stamp if e.timestamp is moment else e.timestamp.timestamp(),
                e.type,
                _compact(e.details),
            )
            for e in events
        ]
    )
    status = execution.status if execution.status != "PENDING" else "RUNNING"
    snapshot = _compact(execution.snapshot())
    finish = next((c for c in commands if isinstance(c, Finish)), None)
    if finish is None:
        updated = record.checkpointed(status, snapshot, execution.event_count)
    else:
        output = (
            None
            if finish.output is None and finish.status != "SUCCEEDED"
            else json.dumps(finish.output)
        )
        updated = record.checkpointed(
            status, snapshot, execution.event_count, output=output, error=finish.error,
            cause=finish.cause, stopped_at=now, finished=True,
        )  # fmt: skip
    _carry_out(tx, updated, commands, now=now, ctx=ctx, outcome=outcome, writes=batch)
    if finish is not None:
        outcome.finished.append(record.arn)
        _notify_parent(tx, updated, finish, now, outcome)
    batch.executions.append(updated)
    if ctx.resident is not None:
        ctx.resident.keep(record.arn, snapshot, execution)
    if writes is None:
        batch.flush(tx)
    outcome.advanced += 1
    return updated


def _carry_out(
    tx: Transaction,
    record: ExecutionRecord,
    commands: Sequence[Command],
    *,
    now: float,
    ctx: Context,
    outcome: Outcome,
    writes: Writes,
) -> None:
    timers = writes.signals
    tasks = writes.tasks
    cancelled: list[str] = []
    timed = False
    for command in commands:
        if isinstance(command, StartTimer):
            timed = True
            timers.append(
                (record.arn, command.due.timestamp(), codec.encode_signal(_timer(command)))
            )
        elif isinstance(command, CancelTask):
            cancelled.append(command.token)
        elif isinstance(command, ScheduleTask):
            if command.kind == "states:startExecution":
                ctx.start_child(tx, record, command, now, outcome)
            elif command.kind in LOCAL_KINDS and ctx.runs_tasks:
                task = TaskRecord(
                    command.token,
                    record.arn,
                    command.kind,
                    codec.encode_task(command),
                    "running",
                    now,
                    lease_until=now + ctx.lease_seconds,
                    worker=ctx.worker,
                )
                tasks.append(task)
                outcome.local_tasks.append(task)
            elif command.kind in LOCAL_KINDS:
                tasks.append(
                    TaskRecord(
                        command.token,
                        record.arn,
                        command.kind,
                        codec.encode_task(command),
                        "ready",
                        now,
                    )
                )
            elif command.kind == "activity":
                tasks.append(
                    TaskRecord(
                        command.token,
                        record.arn,
                        "activity",
                        codec.encode_task(command),
                        "ready",
                        now,
                        activity_arn=command.resource,
                    )
                )
            else:
                timers.append(
                    (
                        record.arn,
                        now,
                        codec.encode_signal(
                            TaskFailed(
                                command.token,
                                "States.Runtime",
                                f"Dirigent does not run the AWS service integration "
                                f"{command.resource!r}; use a function, an activity, an HTTP "
                                "task or a child execution.",
                            )
                        ),
                    )
                )
                outcome.touched.add(record.arn)
                timed = True
    outcome.timers = outcome.timers or timed
    if cancelled:
        writes.done.extend(cancelled)
        outcome.local_tasks[:] = [t for t in outcome.local_tasks if t.token not in cancelled]


def _timer(command: StartTimer) -> Signal:
    return TimerFired(command.timer_id)


def _notify_parent(
    tx: Transaction, child: ExecutionRecord, finish: Finish, now: float, outcome: Outcome
) -> None:
    """A ``.sync`` child has ended: its parent's task gets the result."""
    if child.parent_arn is None or child.parent_token is None:
        return
    task = tx.get_task(child.parent_token)
    sync = "sync"
    if task is not None:
        sync = codec.decode_task(task.command).sync or "sync"
        tx.delete_tasks([child.parent_token])
    described = describe_for_parent(child, finish, now, parse_output=sync == "sync:2")
    signal: Signal
    if finish.status == "SUCCEEDED":
        signal = TaskSucceeded(child.parent_token, described)
    else:
        error = (
            "States.TaskFailed"
            if finish.status == "FAILED"
            else ("States.Timeout" if finish.status == "TIMED_OUT" else "States.TaskFailed")
        )
        signal = TaskFailed(child.parent_token, error, json.dumps(described))
    tx.add_signals([(child.parent_arn, now, codec.encode_signal(signal))])
    outcome.touched.add(child.parent_arn)


def describe_for_parent(
    child: ExecutionRecord, finish: Finish, now: float, *, parse_output: bool
) -> dict[str, Any]:
    """The DescribeExecution-shaped result ``.sync`` integrations return."""
    result: dict[str, Any] = {
        "ExecutionArn": child.arn,
        "StateMachineArn": child.machine_arn,
        "Name": child.name,
        "Status": finish.status,
        "StartDate": int(child.started_at * 1000),
        "StopDate": int(now * 1000),
        "Input": json.loads(child.input) if parse_output else child.input,
        "InputDetails": {"Included": True},
    }
    if finish.status == "SUCCEEDED":
        result["Output"] = finish.output if parse_output else json.dumps(finish.output)
        result["OutputDetails"] = {"Included": True}
    if finish.error is not None:
        result["Error"] = finish.error
    if finish.cause is not None:
        result["Cause"] = finish.cause
    return result


def started_signal(token: str, worker: str | None = None) -> str:
    return codec.encode_signal(TaskStarted(token, worker))


__all__ = ["LOCAL_KINDS", "Context", "Outcome", "ServiceError", "advance", "load"]
