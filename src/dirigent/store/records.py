"""The rows the store keeps, as frozen dataclasses.

Times are seconds since the epoch (floats) so both databases store them the
same way; JSON documents (definitions, inputs, snapshots, event details) are
kept as text exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MachineRecord:
    arn: str
    name: str
    type: str
    definition: str
    role_arn: str
    created_at: float
    updated_at: float
    revision_id: str
    description: str = ""
    logging: str = "{}"
    tracing: str = "{}"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    arn: str
    machine_arn: str
    version: int
    definition: str
    role_arn: str
    revision_id: str
    created_at: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class AliasRecord:
    arn: str
    machine_arn: str
    name: str
    #: JSON list of {"stateMachineVersionArn", "weight"}
    routing: str
    created_at: float
    updated_at: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    arn: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    arn: str
    machine_arn: str
    name: str
    status: str
    input: str
    started_at: float
    #: the state machine, version or alias ARN the execution was started with
    started_with: str
    #: the definition (and role) it runs: the machine's at start, or a version's
    definition: str
    role_arn: str
    token_prefix: str
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    stopped_at: float | None = None
    snapshot: str | None = None
    event_count: int = 0
    redrive_count: int = 0
    redriven_at: float | None = None
    parent_arn: str | None = None
    #: for a child started with .sync: the parent's task token
    parent_token: str | None = None
    machine_type: str = "STANDARD"

    def checkpointed(
        self,
        status: str,
        snapshot: str,
        event_count: int,
        *,
        output: str | None = None,
        error: str | None = None,
        cause: str | None = None,
        stopped_at: float | None = None,
        finished: bool = False,
    ) -> ExecutionRecord:
        """This row after a transition: its status and checkpoint, and when
        ``finished``, its outcome. ``dataclasses.replace`` does the same at
        twice the cost, and every transition makes one."""
        if not finished:
            output, error, cause, stopped_at = self.output, self.error, self.cause, self.stopped_at
        return ExecutionRecord(
            self.arn, self.machine_arn, self.name, status, self.input, self.started_at,
            self.started_with, self.definition, self.role_arn, self.token_prefix, output, error,
            cause, stopped_at, snapshot, event_count, self.redrive_count, self.redriven_at,
            self.parent_arn, self.parent_token, self.machine_type,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventRecord:
    execution_arn: str
    id: int
    previous_id: int
    timestamp: float
    type: str
    #: the details object as JSON text
    details: str


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal waiting for an execution: a task result, a timer, a start or stop."""

    id: int
    execution_arn: str
    due_at: float
    #: the signal as JSON text
    body: str


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """Work the engine owes a task: run a function, call HTTP, await a worker or a callback.

    ``status`` is ``ready`` (waiting for a dispatcher or an activity worker),
    ``running`` (claimed until ``lease_until``) or ``waiting`` (invoked; a
    ``.waitForTaskToken`` callback will finish it).
    """

    token: str
    execution_arn: str
    kind: str
    #: the ScheduleTask command as JSON text
    command: str
    status: str
    created_at: float
    activity_arn: str | None = None
    lease_until: float | None = None
    worker: str | None = None
