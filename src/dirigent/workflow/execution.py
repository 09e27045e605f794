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

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from dirigent.asl import failure
from dirigent.asl.failure import StatesFailure
from dirigent.asl.jsontext import dumps, size_in_bytes, text_size_in_bytes
from dirigent.asl.model import (
    MISSING,
    ChoiceState,
    FailState,
    Json,
    MapState,
    ParallelState,
    PassState,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
)
from dirigent.asl.scope import Entropy
from dirigent.workflow import context as ctx
from dirigent.workflow import dataflow, retrying, states, taskevents
from dirigent.workflow.base import (
    HISTORY_LIMIT,
    PAYLOAD_LIMIT_BYTES,
    Step,
    thread_state,
)
from dirigent.workflow.dataflow import Frame
from dirigent.workflow.fanout import FanoutSteps
from dirigent.workflow.history import payload, payload_text
from dirigent.workflow.resources import classify
from dirigent.workflow.signals import (
    CancelTask,
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
from dirigent.workflow.threads import Thread

__all__ = ["HISTORY_LIMIT", "PAYLOAD_LIMIT_BYTES", "Execution", "Step"]


class Execution(FanoutSteps):
    """One execution of a state machine, as pure state plus a transition function."""

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
        machines: Mapping[str, StateMachine] | None = None,
    ) -> Execution:
        """An execution that continues exactly where :meth:`snapshot` left it."""
        execution = cls(
            machine,
            info,
            entropy=entropy,
            token_prefix=token_prefix,
            keep_history=False,
            history_limit=history_limit,
            machines=machines,
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
        # One encoding serves both the size check and the event.
        text = dumps(out)
        if text_size_in_bytes(text) > PAYLOAD_LIMIT_BYTES:
            raise StatesFailure(
                failure.DATA_LIMIT_EXCEEDED,
                f"The state/task '{state.name}' returned a result with a size exceeding "
                "the maximum number of bytes service limit.",
                prefixed=False,
            )
        del error_output
        details: dict[str, Any] = {"name": state.name, **payload_text("output", text)}
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
        text = dumps(output)
        details = taskevents.succeeded(resource, text)
        self._emit_on(thread, f"{family}Succeeded", details)
        try:
            if text_size_in_bytes(text) > PAYLOAD_LIMIT_BYTES:
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


def _text(value: Json) -> str:
    return dumps(value)
