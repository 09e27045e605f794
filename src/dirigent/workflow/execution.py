"""The execution core: one execution's state, advanced by signals.

:meth:`Execution.handle` takes a signal (start, a task's result, a timer) and
the current time, advances every path of control that can move, and returns the
history events appended and the commands for the shell. It performs no I/O and
never raises for anything a workflow does: failures inside the workflow become
ASL errors in the history. An exception out of ``handle`` is a bug.

Paths of control ("threads") are the top level, each Parallel branch and each
Map iteration. They run depth-first from a ready queue, which reproduces the
order in which AWS records sequential Map iterations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dirigent.asl import failure
from dirigent.asl.failure import StatesFailure
from dirigent.asl.jsontext import dumps, size_in_bytes
from dirigent.asl.model import (
    MISSING,
    ChoiceState,
    FailState,
    Json,
    MapState,
    ParallelState,
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
)
from dirigent.asl.scope import Entropy
from dirigent.workflow import context as ctx
from dirigent.workflow import dataflow, retrying, states, taskevents
from dirigent.workflow.dataflow import Frame
from dirigent.workflow.history import HistoryEvent, payload
from dirigent.workflow.resources import classify
from dirigent.workflow.signals import (
    CancelTask,
    Command,
    Finish,
    ScheduleTask,
    Signal,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)
from dirigent.workflow.threads import Fanout, Thread, child_key, machine_index

#: AWS's service quota on the size of any payload an execution passes around.
PAYLOAD_LIMIT_BYTES = 256 * 1024
#: AWS's quota on the events of one execution's history.
HISTORY_LIMIT = 25_000


@dataclass(frozen=True, slots=True)
class Step:
    """What one call of :meth:`Execution.handle` produced."""

    events: list[HistoryEvent]
    commands: list[Command]


class Execution:
    """One execution of a state machine, as pure state plus a transition function."""

    def __init__(
        self,
        machine: StateMachine,
        info: ctx.ExecutionInfo,
        *,
        entropy: Entropy,
        token_prefix: str = "",
        keep_history: bool = True,
        history_limit: int = HISTORY_LIMIT,
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
        self._machines = machine_index(machine)
        self._next_thread = 0
        self._threads: dict[int, Thread] = {}
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

    # ------------------------------------------------------------------ public

    def handle(self, signal: Signal, now: datetime) -> Step:
        self._now = now
        self._events = []
        self._commands = []
        if self.status in ("PENDING", "RUNNING"):
            self._dispatch(signal)
            self._run_ready()
            self._enforce_history_limit()
        return Step(self._events, self._commands)

    def _enforce_history_limit(self) -> None:
        """AWS's quota: an execution whose history reaches the limit fails."""
        if self.status != "RUNNING" or self.event_count < self.history_limit:
            return
        for thread in list(self._threads.values()):
            if thread.parent is not None:
                self._abort_thread(thread)
        root = next(t for t in self._threads.values() if t.parent is None)
        self._finish_execution_failed(
            root,
            failure.RUNTIME,
            f"The execution reached the maximum number of history events ({self.history_limit}).",
        )

    @property
    def finished(self) -> bool:
        return self.status not in ("PENDING", "RUNNING")

    def snapshot(self) -> dict[str, Any]:
        """The execution's state as JSON-ready data, taken between two signals.

        Together with the definition and :class:`~dirigent.workflow.context.ExecutionInfo`
        it is all :meth:`restore` needs; the history is not part of it.
        """
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "event_count": self.event_count,
            "next_thread": self._next_thread,
            "threads": [thread.to_json() for thread in self._threads.values()],
            "tokens": self._tokens,
            "timers": {timer: list(entry) for timer, entry in self._timers.items()},
            "sequence": self._sequence,
            "invocations": self._invocations,
            "redrive_point": self._redrive_point,
        }

    @classmethod
    def restore(
        cls,
        machine: StateMachine,
        info: ctx.ExecutionInfo,
        snapshot: Mapping[str, Any],
        *,
        entropy: Entropy,
        token_prefix: str = "",
        history_limit: int = HISTORY_LIMIT,
    ) -> Execution:
        """An execution that continues exactly where :meth:`snapshot` left it."""
        execution = cls(
            machine,
            info,
            entropy=entropy,
            token_prefix=token_prefix,
            keep_history=False,
            history_limit=history_limit,
        )
        execution.status = snapshot["status"]
        execution.output = snapshot["output"]
        execution.error = snapshot["error"]
        execution.cause = snapshot["cause"]
        execution.event_count = snapshot["event_count"]
        execution._next_thread = snapshot["next_thread"]
        for data in snapshot["threads"]:
            thread = Thread.from_json(data, execution._machines)
            execution._threads[thread.id] = thread
        execution._tokens = dict(snapshot["tokens"])
        execution._timers = {
            timer: (int(entry[0]), str(entry[1])) for timer, entry in snapshot["timers"].items()
        }
        execution._sequence = snapshot["sequence"]
        execution._invocations = dict(snapshot["invocations"])
        execution._redrive_point = snapshot.get("redrive_point")
        return execution

    @property
    def redrivable(self) -> bool:
        return self.status in ("FAILED", "TIMED_OUT", "ABORTED") and bool(self._redrive_point)

    def redrive(self, now: datetime) -> Step:
        """Run again from the state that failed, as ``RedriveExecution`` does.

        The top-level state that failed is entered again with the input it had;
        the states before it are not run again. A Map or Parallel that failed
        runs all its iterations or branches again.
        """
        self._now = now
        self._events = []
        self._commands = []
        point = self._redrive_point
        if not self.redrivable or point is None:
            return Step([], [])
        self.status = "RUNNING"
        self.output = self.error = self.cause = None
        self._redrive_point = None
        redriven = self._emit(
            "ExecutionRedriven", self._last_id(), {"redriveCount": self.info.redrive_count}
        )
        root = self._new_thread("", point["variables"], parent=None)
        root.state_name = point["state"]
        root.raw_input = point["input"]
        root.prev_event = redriven.id
        self._ready.append(root.id)
        self._run_ready()
        return Step(self._events, self._commands)

    def invocation_index(self, state_name: str) -> int:
        """How many times ``state_name`` has been invoked before (for mocks)."""
        return self._invocations.get(state_name, 0)

    # ------------------------------------------------------------------ signals

    def _dispatch(self, signal: Signal) -> None:
        if isinstance(signal, Start):
            self._start(signal.input)
        elif isinstance(signal, TaskStarted):
            self._on_task_started(signal)
        elif isinstance(signal, TaskSucceeded):
            thread = self._take_token(signal.token)
            if thread is not None:
                self._on_task_succeeded(thread, signal.output)
        elif isinstance(signal, TaskFailed):
            thread = self._take_token(signal.token)
            if thread is not None:
                self._on_task_failed(thread, signal.error, signal.cause)
        elif isinstance(signal, TaskHeartbeat):
            self._on_heartbeat(signal.token)
        elif isinstance(signal, TimerFired):
            self._on_timer(signal.timer_id)
        elif isinstance(signal, Stop):
            self._abort(signal.error, signal.cause)

    def _start(self, execution_input: Json) -> None:
        if self.status != "PENDING":
            return
        self.status = "RUNNING"
        started = self._emit(
            "ExecutionStarted",
            0,
            {
                **payload("input", execution_input),
                "roleArn": self.info.role_arn,
            },
        )
        root = self._new_thread("", {}, parent=None)
        root.state_name = self.machine.start_at
        root.raw_input = execution_input
        root.prev_event = started.id
        if self.machine.timeout_seconds is not None:
            timer = self._mint("timer")
            self._timers[timer] = (root.id, "execution-timeout")
            self._commands.append(
                StartTimer(timer, self._now + timedelta(seconds=self.machine.timeout_seconds))
            )
        if size_in_bytes(execution_input) > PAYLOAD_LIMIT_BYTES:
            self._finish_execution_failed(
                root,
                failure.DATA_LIMIT_EXCEEDED,
                "The input exceeds the maximum number of bytes service limit.",
            )
            return
        self._ready.append(root.id)

    def _take_token(self, token: str) -> Thread | None:
        thread_id = self._tokens.pop(token, None)
        if thread_id is None:
            return None
        thread = self._threads[thread_id]
        thread.token = None
        self._cancel_thread_timers(thread)
        return thread

    def _cancel_thread_timers(self, thread: Thread) -> None:
        for timer in (thread.timer, thread.heartbeat_timer):
            if timer is not None:
                self._timers.pop(timer, None)
        thread.timer = None
        thread.heartbeat_timer = None

    def _on_task_started(self, signal: TaskStarted) -> None:
        thread_id = self._tokens.get(signal.token)
        if thread_id is None:
            return
        thread = self._threads[thread_id]
        state = thread_state(thread)
        assert isinstance(state, TaskState)
        resource = classify(state.resource)
        details = taskevents.started(resource, signal.worker_name)
        self._emit_on(thread, f"{resource.event_family}Started", details)

    def _on_heartbeat(self, token: str) -> None:
        thread_id = self._tokens.get(token)
        if thread_id is None:
            return
        thread = self._threads[thread_id]
        if thread.heartbeat_timer is None:
            return
        _, seconds = self._timers.pop(thread.heartbeat_timer)[0], None
        state = thread_state(thread)
        assert isinstance(state, TaskState)
        heartbeat = states.heartbeat_seconds(state, self._frame(thread))
        if heartbeat is not None:
            thread.heartbeat_timer = self._arm(thread, "heartbeat", heartbeat)
        del seconds

    def _on_timer(self, timer_id: str) -> None:
        entry = self._timers.pop(timer_id, None)
        if entry is None:
            return
        thread_id, purpose = entry
        thread = self._threads[thread_id]
        if purpose == "execution-timeout":
            self._time_out_execution()
        elif purpose == "wait":
            thread.timer = None
            self._finish_wait(thread)
        elif purpose == "retry":
            thread.timer = None
            thread.phase = "act"
            self._ready.append(thread.id)
        elif purpose in ("timeout", "heartbeat"):
            self._on_task_timeout(thread, purpose)

    # ------------------------------------------------------------------ running

    def _run_ready(self) -> None:
        while self._ready and not self.finished:
            thread = self._threads.get(self._ready.popleft())
            if thread is None or thread.done:
                continue
            try:
                if thread.phase == "enter":
                    self._enter(thread)
                elif thread.phase == "act":
                    self._act(thread)
                elif thread.phase == "fanout-done":
                    self._finish_fanout(thread)
            except StatesFailure as exc:
                self._state_raised(thread, exc)

    def _state_raised(self, thread: Thread, exc: StatesFailure) -> None:
        """A data-flow failure inside a state: record it, then handle it as ASL says."""
        cause = self._cause_of(thread, exc)
        if exc.error == failure.QUERY_EVALUATION:
            self._emit_on(
                thread,
                "EvaluationFailed",
                {"error": exc.error, "cause": cause, "state": thread.state_name},
            )
            # A Map whose item list cannot be evaluated is recorded as failed.
            thread.fanout_failed = isinstance(thread_state(thread), MapState)
        self._fail_state(thread, exc.error, cause)

    def _map_run_arn(self, thread: Thread) -> str:
        arn = self.info.execution_arn.replace(":execution:", ":mapRun:", 1)
        return f"{arn}/{thread.state_name}:{thread.entered_event}"

    def _cause_of(self, thread: Thread, exc: StatesFailure) -> str:
        if not exc.prefixed:
            return exc.cause
        return (
            f"An error occurred while executing the state '{thread.state_name}' "
            f"(entered at the event id #{thread.entered_event}). {exc.cause}"
        )

    def _frame(self, thread: Thread) -> Frame:
        state = thread_state(thread)
        retry_count = (
            sum(thread.retry_counts)
            if isinstance(state, TaskState | ParallelState | MapState)
            else None
        )
        context = ctx.build(
            self.info,
            state_name=thread.state_name,
            entered_time=thread.entered_time or self._now,
            retry_count=retry_count,
            task_token=thread.token if thread.token and _wants_token(state) else None,
            map_item=thread.map_item,
        )
        return Frame(state, thread.raw_input, context, thread.variables, self.entropy)

    def _enter(self, thread: Thread) -> None:
        state = thread_state(thread)
        thread.entered_time = self._now
        thread.attempt = 0
        thread.retry_counts = [0] * len(getattr(state, "retry", ()))
        entered = self._emit_on(
            thread,
            f"{state.type}StateEntered",
            {"name": state.name, **payload("input", thread.raw_input)},
        )
        thread.entered_event = entered.id
        frame = self._frame(thread)
        thread.effective = dataflow.effective_input(frame)
        if isinstance(state, FailState):
            error, cause = states.fail_error_and_cause(state, frame)
            self._fail_thread(thread, error, cause)
            return
        thread.phase = "act"
        self._act(thread)

    def _act(self, thread: Thread) -> None:
        state = thread_state(thread)
        frame = self._frame(thread)
        if isinstance(state, PassState):
            result = states.pass_result(state, frame, thread.effective)
            self._complete(thread, frame, result)
        elif isinstance(state, ChoiceState):
            rule = states.choose(state, frame, thread.effective)
            if rule is None:
                if state.default is None:
                    raise StatesFailure(
                        failure.NO_CHOICE_MATCHED,
                        "No Matches!",
                        prefixed=False,
                    )
                self._exit(
                    thread, frame, thread.effective, MISSING, state.default, assign=state.assign
                )
            else:
                self._exit(
                    thread,
                    frame,
                    thread.effective,
                    MISSING,
                    rule.next,
                    assign=rule.assign,
                    output_template=rule.output,
                )
        elif isinstance(state, SucceedState):
            self._complete(thread, frame, MISSING)
        elif isinstance(state, WaitState):
            seconds = states.wait_seconds(state, frame, thread.effective, self._now)
            thread.timer = self._arm(thread, "wait", seconds)
        elif isinstance(state, TaskState):
            self._schedule_task(thread, state, frame)
        elif isinstance(state, ParallelState):
            self._start_parallel(thread, state, frame)
        elif isinstance(state, MapState):
            self._start_map(thread, state, frame)
        else:  # pragma: no cover - the parser admits no other state types
            raise AssertionError(f"unknown state type {state.type}")

    def _finish_wait(self, thread: Thread) -> None:
        try:
            self._complete(thread, self._frame(thread), MISSING)
        except StatesFailure as exc:
            self._state_raised(thread, exc)
        self._run_ready()

    # ------------------------------------------------------------------ completing states

    def _complete(self, thread: Thread, frame: Frame, result: Json) -> None:
        state = frame.state
        self._exit(thread, frame, thread.effective, result, state.next, assign=state.assign)

    def _exit(
        self,
        thread: Thread,
        frame: Frame,
        effective: Json,
        result: Json,
        next_state: str | None,
        *,
        assign: Json,
        output_template: Json = MISSING,
        error_output: Json = MISSING,
    ) -> None:
        state = frame.state
        current = effective if result is MISSING else result
        assigned = dataflow.assignments(frame, assign, current, result=result)
        if output_template is not MISSING:
            out = states.rule_output(frame, output_template)
        else:
            out = dataflow.output(frame, effective, result)
        if size_in_bytes(out) > PAYLOAD_LIMIT_BYTES:
            raise StatesFailure(
                failure.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' returned a result with a size exceeding "
                "the maximum number of bytes service limit.",
                prefixed=False,
            )
        del error_output
        details: dict[str, Any] = {"name": state.name, **payload("output", out)}
        if assigned:
            details["assignedVariables"] = {k: _text(v) for k, v in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
        self._emit_on(thread, f"{state.type}StateExited", details)
        thread.variables.update(assigned)
        terminal = isinstance(state, SucceedState) or state.end or next_state is None
        if terminal:
            self._thread_succeeded(thread, out)
        else:
            assert next_state is not None
            thread.state_name = next_state
            thread.raw_input = out
            thread.phase = "enter"
            self._ready.append(thread.id)

    # ------------------------------------------------------------------ tasks

    def _schedule_task(self, thread: Thread, state: TaskState, frame: Frame) -> None:
        resource = classify(state.resource)
        token = self._mint("task")
        # Each attempt evaluates Parameters/Arguments afresh, as AWS does: they may
        # read $$.State.RetryCount and, for .waitForTaskToken, this attempt's
        # $$.Task.Token. The token is registered only once nothing can fail.
        thread.token = token
        try:
            thread.arguments = dataflow.arguments(self._frame(thread), thread.effective)
        finally:
            thread.token = None
        timeout = states.timeout_seconds(state, frame)
        heartbeat = states.heartbeat_seconds(state, frame)
        parameters = thread.arguments
        thread.token = token
        self._tokens[token] = thread.id
        invocation = self._invocations.get(state.name, 0)
        self._invocations[state.name] = invocation + 1
        details = taskevents.scheduled(resource, parameters, timeout, heartbeat)
        self._emit_on(thread, f"{resource.event_family}Scheduled", details)
        self._commands.append(
            ScheduleTask(
                token=token,
                state_name=state.name,
                resource=state.resource,
                kind=resource.kind,
                parameters=parameters,
                attempt=thread.attempt,
                idempotency_key=f"{self.info.execution_arn}/{state.name}/"
                f"{thread.entered_event}/{thread.attempt}",
                timeout_seconds=timeout,
                heartbeat_seconds=heartbeat,
                wait_for_token=resource.wait_for_token,
                sync=resource.sync,
            )
        )
        if timeout is not None:
            thread.timer = self._arm(thread, "timeout", timeout)
        if heartbeat is not None:
            thread.heartbeat_timer = self._arm(thread, "heartbeat", heartbeat)

    def _on_task_succeeded(self, thread: Thread, output: Json) -> None:
        state = thread_state(thread)
        assert isinstance(state, TaskState)
        resource = classify(state.resource)
        family = resource.event_family
        details = taskevents.succeeded(resource, output)
        self._emit_on(thread, f"{family}Succeeded", details)
        try:
            if size_in_bytes(output) > PAYLOAD_LIMIT_BYTES:
                raise StatesFailure(
                    failure.DATA_LIMIT_EXCEEDED,
                    f"The state/task '{state.name}' returned a result with a size exceeding "
                    "the maximum number of bytes service limit.",
                    prefixed=False,
                )
            frame = self._frame(thread)
            result = dataflow.select_result(frame, output)
            self._complete(thread, frame, result)
        except StatesFailure as exc:
            self._state_raised(thread, exc)

    def _on_task_failed(self, thread: Thread, error: str | None, cause: str | None) -> None:
        state = thread_state(thread)
        assert isinstance(state, TaskState)
        resource = classify(state.resource)
        details = taskevents.failed(resource, error, cause)
        self._emit_on(thread, f"{resource.event_family}Failed", details)
        self._fail_state(thread, error or failure.TASK_FAILED, cause)

    def _on_task_timeout(self, thread: Thread, purpose: str) -> None:
        token = thread.token
        if token is None:
            return
        self._tokens.pop(token, None)
        thread.token = None
        self._cancel_thread_timers(thread)
        self._commands.append(CancelTask(token))
        state = thread_state(thread)
        assert isinstance(state, TaskState)
        resource = classify(state.resource)
        error = failure.TIMEOUT if purpose == "timeout" else failure.HEARTBEAT_TIMEOUT
        details = taskevents.timed_out(resource, error)
        self._emit_on(thread, f"{resource.event_family}TimedOut", details)
        self._fail_state(thread, error, None)
        self._run_ready()

    # ------------------------------------------------------------------ Parallel and Map

    def _start_parallel(self, thread: Thread, state: ParallelState, frame: Frame) -> None:
        branch_input = dataflow.arguments(frame, thread.effective)
        self._emit_on(thread, "ParallelStateStarted", {})
        count = len(state.branches)
        thread.fanout = Fanout(
            items=[branch_input] * count, results=[None] * count, limit=count, is_map=False
        )
        self._launch_children(thread)

    def _start_map(self, thread: Thread, state: MapState, frame: Frame) -> None:
        items = states.map_items(state, frame, thread.effective)
        concurrency = states.map_concurrency(state, frame, thread.effective)
        # AWS reports the Map as started before it reads its failure tolerance,
        # so a bad ToleratedFailureCountPath fails a started Map.
        self._emit_on(thread, "MapStateStarted", {"length": len(items)})
        plan = states.map_plan(state, frame, thread.effective, items, concurrency)
        if state.mode == "DISTRIBUTED":
            self._emit_on(thread, "MapRunStarted", {"mapRunArn": self._map_run_arn(thread)})
        thread.fanout = Fanout(
            items=plan.items,
            results=[None] * len(plan.items),
            limit=plan.max_concurrency or len(plan.items) or 1,
            tolerated_count=plan.tolerated_count,
            tolerated_percentage=plan.tolerated_percentage,
            distributed=state.mode == "DISTRIBUTED",
        )
        if not plan.items:
            thread.phase = "fanout-done"
            self._ready.appendleft(thread.id)
            return
        self._launch_children(thread)

    def _launch_children(self, parent: Thread) -> None:
        fan = parent.fanout
        assert fan is not None
        state = thread_state(parent)
        launched: list[int] = []
        while fan.started < len(fan.items) and len(fan.running) < fan.limit:
            index = fan.started
            fan.started += 1
            if isinstance(state, ParallelState):
                child = self._new_thread(
                    child_key(parent, state.name, index), parent.variables, parent=parent.id
                )
                child.raw_input = fan.items[index]
            else:
                assert isinstance(state, MapState)
                child = self._new_thread(
                    child_key(parent, state.name, None), parent.variables, parent=parent.id
                )
                frame = self._frame(parent)
                child.raw_input = states.map_item_input(
                    state, frame, parent.effective, index, fan.items[index]
                )
                child.map_item = None
            child.silent = parent.silent or fan.distributed
            child.child_index = index
            child.state_name = child.machine.start_at
            child.prev_event = parent.prev_event
            fan.running.add(child.id)
            child.phase = "enter"
            if isinstance(state, MapState) and not fan.distributed:
                started = self._emit_on(
                    parent, "MapIterationStarted", {"name": state.name, "index": index}
                )
                child.prev_event = started.id
            launched.append(child.id)
        # Depth-first: the new children run before anything else queued.
        self._ready.extendleft(reversed(launched))

    def _child_finished(self, child: Thread, ok: bool, value: Json, err: tuple[Any, Any]) -> None:
        parent = self._threads[child.parent] if child.parent is not None else None
        assert parent is not None
        assert parent.fanout is not None
        fan = parent.fanout
        fan.running.discard(child.id)
        fan.finished += 1
        state = thread_state(parent)
        if isinstance(state, MapState) and not fan.distributed:
            kind = "MapIterationSucceeded" if ok else "MapIterationFailed"
            self._emit_on(parent, kind, {"name": state.name, "index": child.child_index})
        if ok:
            fan.results[child.child_index] = value
        else:
            fan.failed += 1
            if not self._tolerated(fan):
                self._abort_children(parent)
                parent.fanout = None
                if fan.distributed:
                    self._emit_on(parent, "MapRunFailed", {})
                parent.fanout_failed = True
                if _has_threshold(fan) or fan.distributed:
                    # A Map Run's failure tolerance (zero unless set) was exceeded.
                    err = (failure.EXCEED_TOLERATED_FAILURE, _THRESHOLD_EXCEEDED)
                self._fail_state(parent, err[0], err[1])
                return
            fan.results[child.child_index] = {"Error": err[0], "Cause": err[1]}
        if fan.finished == len(fan.items):
            parent.phase = "fanout-done"
            self._ready.appendleft(parent.id)
        else:
            self._launch_children(parent)

    def _tolerated(self, fan: Fanout) -> bool:
        # With both thresholds set, the Map fails as soon as either is exceeded.
        if not fan.is_map or not _has_threshold(fan):
            return False
        if fan.tolerated_count is not None and fan.failed > fan.tolerated_count:
            return False
        if fan.tolerated_percentage is not None and fan.items:
            return fan.failed * 100.0 / len(fan.items) <= fan.tolerated_percentage
        return True

    def _abort_children(self, parent: Thread) -> None:
        fan = parent.fanout
        if fan is None:
            return
        for child_id in list(fan.running):
            child = self._threads.get(child_id)
            if child is not None:
                self._abort_thread(child)
        fan.running.clear()

    def _abort_thread(self, thread: Thread) -> None:
        if not thread.done and thread.entered_event:
            state = thread_state(thread)
            self._emit_on(thread, f"{state.type}StateAborted", {"name": state.name})
        self._retire(thread)
        if thread.token is not None:
            self._tokens.pop(thread.token, None)
            self._commands.append(CancelTask(thread.token))
            thread.token = None
        self._cancel_thread_timers(thread)
        if thread.fanout is not None:
            self._abort_children(thread)

    def _finish_fanout(self, thread: Thread) -> None:
        fan = thread.fanout
        assert fan is not None
        thread.fanout = None
        state = thread_state(thread)
        # AWS records MapStateSucceeded but no ParallelStateSucceeded.
        if isinstance(state, MapState):
            if fan.distributed:
                self._emit_on(thread, "MapRunSucceeded", {})
            self._emit_on(thread, "MapStateSucceeded", {})
        frame = self._frame(thread)
        result = dataflow.select_result(frame, fan.results)
        self._complete(thread, frame, result)

    # ------------------------------------------------------------------ failures

    def _fail_state(
        self,
        thread: Thread,
        error: str | None,
        cause: str | None,
    ) -> None:
        """A state failed: retry it, catch it, or fail its path of control."""
        state = thread_state(thread)
        fanout_failed, thread.fanout_failed = thread.fanout_failed, False
        # A Map or Parallel whose children failed records it unless it retries.
        report_fanout = fanout_failed and (
            isinstance(state, MapState) or not self._failed_by_aborted_task
        )
        name = error or ""
        retriers = getattr(state, "retry", ())
        index = retrying.first_retrier(retriers, name)
        if index is not None:
            retrier = retriers[index]
            attempts = thread.retry_counts[index]
            if attempts < retrier.max_attempts:
                thread.retry_counts[index] = attempts + 1
                thread.attempt += 1
                delay = retrying.backoff_seconds(retrier, attempts, self.entropy.random_float(None))
                thread.timer = self._arm(thread, "retry", delay)
                return
        if report_fanout:
            self._emit_on(thread, f"{state.type}StateFailed", {})
        catcher = retrying.first_catcher(getattr(state, "catch", ()), name)
        if catcher is not None:
            frame = self._frame(thread)
            try:
                out, assigned = states.catch_output(frame, catcher, error, cause)
            except StatesFailure as exc:
                self._fail_thread(thread, exc.error, self._cause_of(thread, exc))
                return
            details: dict[str, Any] = {"name": state.name, **payload("output", out)}
            if assigned:
                details["assignedVariables"] = {k: _text(v) for k, v in assigned.items()}
                details["assignedVariablesDetails"] = {"truncated": False}
            self._emit_on(thread, f"{state.type}StateExited", details)
            thread.variables.update(assigned)
            thread.state_name = catcher.next
            thread.raw_input = out
            thread.phase = "enter"
            self._ready.append(thread.id)
            return
        self._failed_by_aborted_task = False
        if not fanout_failed and isinstance(state, TaskState) and self._in_parallel_branch(thread):
            # AWS records a Task whose failure ends a Parallel branch as aborted,
            # and then no ParallelStateFailed.
            self._emit_on(thread, "TaskStateAborted", {"name": state.name})
            self._failed_by_aborted_task = True
        self._fail_thread(thread, error, cause)

    def _in_parallel_branch(self, thread: Thread) -> bool:
        if thread.parent is None:
            return False
        return isinstance(thread_state(self._threads[thread.parent]), ParallelState)

    def _fail_thread(self, thread: Thread, error: str | None, cause: str | None) -> None:
        self._retire(thread)
        if thread.parent is None:
            self._finish_execution_failed(thread, error, cause)
        else:
            self._child_finished(thread, False, None, (error, cause))

    def _thread_succeeded(self, thread: Thread, output: Json) -> None:
        self._retire(thread)
        if thread.parent is None:
            self.status = "SUCCEEDED"
            self.output = output
            self._emit_on(thread, "ExecutionSucceeded", payload("output", output))
            self._commands.append(Finish("SUCCEEDED", output=output))
            self._cancel_all()
        else:
            self._child_finished(thread, True, output, (None, None))

    def _finish_execution_failed(
        self, thread: Thread, error: str | None, cause: str | None
    ) -> None:
        self._remember_redrive_point(thread)
        self.status = "FAILED"
        self.error, self.cause = error, cause
        details: dict[str, Any] = {}
        if error is not None:
            details["error"] = error
        if cause is not None:
            details["cause"] = cause
        self._emit_on(thread, "ExecutionFailed", details)
        self._commands.append(Finish("FAILED", error=error, cause=cause))
        self._cancel_all()

    def _remember_redrive_point(self, thread: Thread | None = None) -> None:
        """Where a redrive resumes: the top-level state that was running, with its input."""
        if thread is None or thread.parent is not None:
            thread = next((t for t in self._threads.values() if t.parent is None), thread)
        if thread is None or not thread.state_name:
            return
        self._redrive_point = {
            "state": thread.state_name,
            "input": thread.raw_input,
            "variables": thread.variables,
        }

    def _time_out_execution(self) -> None:
        self._remember_redrive_point()
        self.status = "TIMED_OUT"
        self.error, self.cause = failure.TIMEOUT, None
        self._emit("ExecutionTimedOut", self._last_id(), {"error": failure.TIMEOUT})
        self._commands.append(Finish("TIMED_OUT", error=failure.TIMEOUT))
        self._cancel_all()

    def _abort(self, error: str | None, cause: str | None) -> None:
        if self.status == "PENDING":
            self.status = "ABORTED"
            return
        self._remember_redrive_point()
        self.status = "ABORTED"
        self.error, self.cause = error, cause
        details: dict[str, Any] = {}
        if error is not None:
            details["error"] = error
        if cause is not None:
            details["cause"] = cause
        self._emit("ExecutionAborted", self._last_id(), details)
        self._commands.append(Finish("ABORTED", error=error, cause=cause))
        self._cancel_all()

    def _cancel_all(self) -> None:
        for token in list(self._tokens):
            self._commands.append(CancelTask(token))
        self._tokens.clear()
        self._timers.clear()
        self._ready.clear()

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


def thread_state(thread: Thread) -> State:
    return thread.machine.states[thread.state_name]


_THRESHOLD_EXCEEDED = "The specified tolerated failure threshold was exceeded"


def _has_threshold(fan: Fanout) -> bool:
    return fan.tolerated_count is not None or fan.tolerated_percentage is not None


def _wants_token(state: State) -> bool:
    return isinstance(state, TaskState) and state.resource.endswith(".waitForTaskToken")


def _text(value: Json) -> str:
    return dumps(value)
