"""Run a state machine to completion in this process, with no server and no store.

This is the shell ``dirigent run`` uses and the way users test workflows
offline: the pure core is driven with a clock that is either real (timers sleep)
or virtual (timers fire at once while the history's timestamps advance as if
the time had passed). Task results come from a MockConfigFile test case, or
from Python callables standing in for Lambda functions.
"""

from __future__ import annotations

import heapq
import json
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dirigent.asl import failure
from dirigent.asl.model import Json, StateMachine
from dirigent.asl.parser import parse_definition
from dirigent.asl.scope import Entropy
from dirigent.entropy import SystemEntropy
from dirigent.errors import InputError
from dirigent.testing.mocks import MockReturn, TestCase, load_test_case
from dirigent.workflow.context import ExecutionInfo
from dirigent.workflow.execution import Execution
from dirigent.workflow.history import HistoryEvent
from dirigent.workflow.signals import (
    CancelTask,
    Finish,
    ScheduleTask,
    Signal,
    Start,
    StartTimer,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)

LambdaFunction = Callable[[Json], Json]

_REGION = "us-east-1"
_ACCOUNT = "123456789012"


@dataclass(frozen=True, slots=True)
class LocalRun:
    status: str
    output: Json
    error: str | None
    cause: str | None
    history: list[HistoryEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "history": [_event_json(event) for event in self.history],
        }


def _event_json(event: HistoryEvent) -> dict[str, Any]:
    shaped = event.to_aws()
    shaped["timestamp"] = event.timestamp.isoformat()
    return shaped


def run_local(
    definition: str | bytes | Mapping[str, Any] | StateMachine,
    input: Json,
    *,
    mock_config: Mapping[str, Any] | None = None,
    test_case: str | None = None,
    state_machine_name: str = "local",
    execution_name: str = "local-execution",
    functions: Mapping[str, LambdaFunction] | None = None,
    virtual_time: bool = True,
    entropy: Entropy | None = None,
    start_time: datetime | None = None,
    checkpoint_every_step: bool = False,
) -> LocalRun:
    """Run ``definition`` on ``input`` and return how it ended, with its history.

    Raises :class:`~dirigent.errors.DefinitionError` for an invalid definition
    and :class:`~dirigent.errors.InputError` for an unusable mock configuration;
    anything the workflow itself does wrong ends as a FAILED run, not an exception.

    ``checkpoint_every_step`` folds the execution into its JSON snapshot after
    every signal and continues from a restored copy, as the durable engine does
    after a crash; the outcome must not change.
    """
    machine = definition if isinstance(definition, StateMachine) else parse_definition(definition)
    case: TestCase | None = None
    if mock_config is not None:
        if test_case is None:
            raise InputError("a mock configuration needs a test case (--test-case)")
        case = load_test_case(mock_config, state_machine_name, test_case)
    started = start_time or datetime.now(UTC)
    machine_arn = f"arn:aws:states:{_REGION}:{_ACCOUNT}:stateMachine:{state_machine_name}"
    info = ExecutionInfo(
        execution_arn=f"arn:aws:states:{_REGION}:{_ACCOUNT}:execution:"
        f"{state_machine_name}:{execution_name}",
        name=execution_name,
        state_machine_arn=machine_arn,
        state_machine_name=state_machine_name,
        start_time=started,
        input=input,
    )
    driver = _Driver(
        Execution(machine, info, entropy=entropy or SystemEntropy(), keep_history=False),
        case=case,
        functions=functions or {},
        virtual_time=virtual_time,
        now=started,
        checkpoint_every_step=checkpoint_every_step,
    )
    return driver.run(input)


class _Driver:
    """Carries out the core's commands in-process until the execution ends."""

    def __init__(
        self,
        execution: Execution,
        *,
        case: TestCase | None,
        functions: Mapping[str, LambdaFunction],
        virtual_time: bool,
        now: datetime,
        checkpoint_every_step: bool = False,
    ) -> None:
        self.execution = execution
        self.history: list[HistoryEvent] = []
        self.checkpoint_every_step = checkpoint_every_step
        self.case = case
        self.functions = functions
        self.virtual_time = virtual_time
        self.now = now
        self._wall_origin = time.monotonic()
        self._signals: deque[Signal] = deque()
        self._timers: list[tuple[datetime, int, str]] = []
        self._timer_seq = 0
        self._cancelled: set[str] = set()
        #: invocations of each state so far, in the order the core scheduled them
        self._invocations: dict[str, int] = {}

    def _clock(self) -> datetime:
        if self.virtual_time:
            return self.now
        return self.now + timedelta(seconds=time.monotonic() - self._wall_origin)

    def run(self, execution_input: Json) -> LocalRun:
        self._step(Start(execution_input))
        while not self.execution.finished:
            if self._signals:
                self._step(self._signals.popleft())
                continue
            if not self._timers:
                break
            due, _, timer_id = heapq.heappop(self._timers)
            if self.virtual_time:
                self.now = max(self.now, due)
            else:
                delay = (due - self._clock()).total_seconds()
                if delay > 0:
                    time.sleep(delay)
            self._signals.append(TimerFired(timer_id))
        execution = self.execution
        status = execution.status if execution.finished else "RUNNING"
        return LocalRun(status, execution.output, execution.error, execution.cause, self.history)

    def _step(self, signal: Signal) -> None:
        step = self.execution.handle(signal, self._clock())
        self.history.extend(step.events)
        if self.checkpoint_every_step:
            execution = self.execution
            snapshot = json.loads(json.dumps(execution.snapshot()))
            self.execution = Execution.restore(
                execution.machine, execution.info, snapshot, entropy=execution.entropy
            )
        self._apply(step.commands)

    def _apply(self, commands: list[Any]) -> None:
        for command in commands:
            if isinstance(command, StartTimer):
                self._timer_seq += 1
                heapq.heappush(self._timers, (command.due, self._timer_seq, command.timer_id))
            elif isinstance(command, ScheduleTask):
                self._perform(command)
            elif isinstance(command, CancelTask):
                self._cancelled.add(command.token)
            elif isinstance(command, Finish):
                self._timers.clear()

    def _perform(self, task: ScheduleTask) -> None:
        self._signals.append(TaskStarted(task.token))
        # Counted here, one per ScheduleTask: the core may schedule several tasks of
        # one state in a single step (Map iterations), so its running count at the
        # end of the step would give them all the same index.
        invocation = self._invocations.get(task.state_name, 0)
        self._invocations[task.state_name] = invocation + 1
        if self.case is not None and self.case.mocks(task.state_name):
            response = self.case.response(task.state_name, invocation)
            if response is None:
                self._signals.append(
                    TaskFailed(
                        task.token,
                        failure.TASK_FAILED,
                        f"The mock test case {self.case.name!r} has no response for "
                        f"invocation {invocation} of state {task.state_name!r}",
                    )
                )
            elif isinstance(response, MockReturn):
                self._signals.append(TaskSucceeded(task.token, response.value))
            else:
                self._signals.append(TaskFailed(task.token, response.error, response.cause))
            return
        function = self._function_for(task)
        if function is None:
            self._signals.append(
                TaskFailed(
                    task.token,
                    failure.TASK_FAILED,
                    f"No mocked response or function for the resource {task.resource!r} "
                    f"of state {task.state_name!r}",
                )
            )
            return
        payload_in = task.parameters
        if task.kind == "lambda:invoke" and isinstance(payload_in, dict):
            payload_in = payload_in.get("Payload")
        try:
            result = function(payload_in)
        except Exception as exc:  # the function is user code: its failure is data
            self._signals.append(TaskFailed(task.token, type(exc).__name__, _lambda_cause(exc)))
            return
        if task.kind == "lambda:invoke":
            result = {
                "ExecutedVersion": "$LATEST",
                "Payload": result,
                "SdkHttpMetadata": {"HttpStatusCode": 200},
                "SdkResponseMetadata": {},
                "StatusCode": 200,
            }
        self._signals.append(TaskSucceeded(task.token, result))

    def _function_for(self, task: ScheduleTask) -> LambdaFunction | None:
        if task.kind == "lambda":
            return self.functions.get(task.resource.rsplit(":", 1)[-1])
        if task.kind == "lambda:invoke" and isinstance(task.parameters, dict):
            name = str(task.parameters.get("FunctionName", ""))
            # FunctionName may be a name, a partial ARN or a full ARN (maybe with a version).
            parts = name.split(":")
            if "function" in parts:
                name = parts[parts.index("function") + 1]
            return self.functions.get(name)
        return None


def _lambda_cause(exc: Exception) -> str:
    """Lambda's error envelope for an exception raised by a function."""
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": "00000000-0000-0000-0000-000000000000",
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    )
