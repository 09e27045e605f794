"""Executions: start, look at, stop and redrive them; answer their tasks.

``StartExecution`` writes the execution and its start signal in one
transaction and returns; a worker advances it from there. Stop and redrive run
their transition in the caller's transaction, so their effect is visible the
moment the call returns, as on AWS. Task callbacks (``SendTask*``) enqueue a
signal for the execution that owns the token.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from dirigent.asl.jsontext import size_in_bytes
from dirigent.engine import codec
from dirigent.engine.arns import Arns, check_name
from dirigent.engine.catalog import Catalog, when
from dirigent.engine.errors import (
    ExecutionAlreadyExists,
    ExecutionDoesNotExist,
    ExecutionNotRedrivable,
    InvalidArn,
    InvalidExecutionInput,
    InvalidOutput,
    InvalidToken,
    TaskDoesNotExist,
    ValidationException,
)
from dirigent.engine.groupcommit import GroupCommit
from dirigent.engine.transitions import Context, Outcome, Writes, advance
from dirigent.store.port import Conflict, Store, Transaction
from dirigent.store.records import EventRecord, ExecutionRecord
from dirigent.workflow.history import detail_key
from dirigent.workflow.signals import Start, Stop, TaskFailed, TaskHeartbeat, TaskSucceeded

PAYLOAD_LIMIT = 256 * 1024
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
#: AWS lets an execution be redriven for 14 days after it stopped
REDRIVE_WINDOW = 14 * 24 * 3600


def parse_payload(text: object, field: str, error: type[Exception]) -> Any:
    if text is None:
        text = "{}"
    if not isinstance(text, str):
        raise error(f"Invalid {field}: expected a JSON string")
    if len(text.encode("utf-8")) > PAYLOAD_LIMIT:
        raise error(
            f"Invalid {field}: the {field} is {len(text.encode('utf-8'))} bytes; "
            f"at most {PAYLOAD_LIMIT} bytes (256 KiB) are allowed"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"Invalid {field}: '{exc.msg} at line {exc.lineno}, column {exc.colno}'"
        ) from exc


def _encode_token(value: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(value)).encode()).decode()


def _decode_token(token: object) -> tuple[float, str] | None:
    if token is None:
        return None
    try:
        started, arn = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        return float(started), str(arn)
    except (ValueError, TypeError) as exc:
        raise ValidationException("Invalid nextToken") from exc


@dataclass(frozen=True, slots=True)
class _Start:
    """A StartExecution request, checked and ready for its transaction."""

    target: object
    name: str
    input: Any
    canonical: str
    token_prefix: str


class Loop(Protocol):
    """The worker loop, as far as starts are concerned (see ``Worker.commit_in_loop``)."""

    @property
    def running(self) -> bool: ...
    def commit_in_loop(self, run: Callable[[Transaction, Writes, Outcome], Any]) -> Any: ...
    def commit_in_loop_then(
        self,
        run: Callable[[Transaction, Writes, Outcome], Any],
        settle: Callable[[Any, BaseException | None], None],
    ) -> bool: ...


class _RandomHex:
    """Unguessable hex strings (task-token prefixes, names) with few system calls.

    ``secrets.token_hex`` reads ``os.urandom`` on every call, a system call
    that gives up the GIL; a thread holding the store's transaction or an
    event loop may then wait a whole switch interval to get it back. Reading
    4 KiB at once and handing out slices keeps the bytes from the same source.
    """

    def __init__(self, chunk: int = 4096) -> None:
        self._chunk = chunk
        self._buffer = b""
        self._lock = threading.Lock()

    def __call__(self, nbytes: int) -> str:
        with self._lock:
            if len(self._buffer) < nbytes:
                self._buffer = os.urandom(max(self._chunk, nbytes))
            piece, self._buffer = self._buffer[:nbytes], self._buffer[nbytes:]
        return piece.hex()


random_hex = _RandomHex()


class Executions:
    def __init__(  # noqa: PLR0917 - wired once, in Engine
        self,
        store: Store,
        arns: Arns,
        catalog: Catalog,
        clock: Callable[[], float],
        transition_context: Callable[[], Context],
        accept: Callable[[Outcome], None],
        pick: Callable[[list[float]], int],
        loop: Loop | None = None,
    ) -> None:
        self.store = store
        self.arns = arns
        self.catalog = catalog
        self.clock = clock
        self.transition_context = transition_context
        self.accept = accept
        self.pick = pick
        self.loop = loop
        self._starts: GroupCommit[_Start, tuple[dict[str, Any], Outcome]] = GroupCommit(
            store, self._start_alone, self._started
        )

    # ------------------------------------------------------------------ start

    def start_execution(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """``StartExecution``: durable before it returns, as on AWS.

        Each start commits with its execution's first transition. While the
        worker's loop runs, starts join its transactions (with the results of
        finished tasks); otherwise concurrent starts share transactions of
        their own (see :mod:`groupcommit`). Either way a burst of starts costs a
        few fsyncs rather than one each.
        """
        start = self._prepare(request)
        if self.loop is not None and self.loop.running:
            answer: dict[str, Any] = self.loop.commit_in_loop(
                lambda tx, writes, outcome: self._start_in(tx, start, writes, outcome)
            )
            return answer
        answer, _ = self._starts.submit(start)
        return answer

    def start_execution_then(
        self,
        request: Mapping[str, Any],
        settle: Callable[[dict[str, Any] | None, BaseException | None], None],
    ) -> bool:
        """``StartExecution`` without blocking the caller, while the worker's loop runs.

        A bad request raises here, at once; otherwise ``settle(answer, error)``
        is called from the loop's thread once the start committed or failed.
        ``False`` (and nothing done) when the loop is not running: call
        :meth:`start_execution` instead. For an event loop, which then needs no
        thread of its own per start.
        """
        if self.loop is None or not self.loop.running:
            return False
        start = self._prepare(request)
        return self.loop.commit_in_loop_then(
            lambda tx, writes, outcome: self._start_in(tx, start, writes, outcome), settle
        )

    def _prepare(self, request: Mapping[str, Any]) -> _Start:
        text = request.get("input", "{}")
        execution_input = parse_payload(text, "input", InvalidExecutionInput)
        name = request.get("name")
        return _Start(
            target=request.get("stateMachineArn"),
            name=check_name(name) if name is not None else random_hex(16),
            input=execution_input,
            canonical=json.dumps(execution_input),
            # Drawn before the transaction, not in it (see random_hex).
            token_prefix=random_hex(12) + ":",
        )

    def _start_alone(
        self, tx: Transaction, start: _Start, writes: Writes
    ) -> tuple[dict[str, Any], Outcome]:
        outcome = Outcome()
        return self._start_in(tx, start, writes, outcome), outcome

    def _start_in(
        self, tx: Transaction, start: _Start, writes: Writes, outcome: Outcome
    ) -> dict[str, Any]:
        now = self.clock()
        machine, definition, role, started_with = self.catalog.resolve_target(
            tx, start.target, self.pick
        )
        arn = self.arns.execution(machine.name, start.name)
        record = ExecutionRecord(
            arn=arn,
            machine_arn=machine.arn,
            name=start.name,
            status="RUNNING",
            input=start.canonical,
            started_at=now,
            started_with=started_with,
            definition=definition,
            role_arn=role,
            token_prefix=start.token_prefix,
            machine_type=machine.type,
        )
        try:
            if writes.defer_starts:
                # Inserted with the batch's other rows; a taken name fails the flush.
                writes.started.append(record)
            else:
                tx.insert_execution(record)
        except Conflict as exc:
            # Looked up only now: a start with a new name (nearly all) skips the read.
            existing = tx.get_execution(arn)
            # AWS: the same name and input while it runs returns the same execution.
            if (
                existing is not None
                and existing.status == "RUNNING"
                and existing.input == start.canonical
            ):
                return {"executionArn": arn, "startDate": when(existing.started_at)}
            raise ExecutionAlreadyExists(f"Execution Already Exists: '{arn}'") from exc
        # The first transition commits with the start: one fsync fewer per execution.
        advance(
            tx,
            record,
            now,
            self.transition_context(),
            outcome,
            extra=[Start(start.input)],
            fresh=True,
            writes=writes,
        )
        return {"executionArn": arn, "startDate": when(now)}

    def _started(self, answers: list[tuple[dict[str, Any], Outcome]]) -> None:
        merged = Outcome()
        for _, outcome in answers:
            merged.local_tasks.extend(outcome.local_tasks)
            merged.touched |= outcome.touched
        self.accept(merged)

    @staticmethod
    def insert(tx: Transaction, record: ExecutionRecord, now: float) -> None:
        try:
            tx.insert_execution(record)
        except Conflict as exc:
            raise ExecutionAlreadyExists(f"Execution Already Exists: '{record.arn}'") from exc
        tx.add_signals([(record.arn, now, codec.encode_signal(Start(json.loads(record.input))))])

    # ------------------------------------------------------------------ reads

    def execution(self, tx: Transaction, arn: object) -> ExecutionRecord:
        if not isinstance(arn, str):
            raise InvalidArn("Invalid Arn: 'executionArn is required'")
        self.arns.parse(arn, ("execution", "express"))
        record = tx.get_execution(arn)
        if record is None:
            raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'")
        return record

    def describe_execution(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.execution(tx, request.get("executionArn"))
        return describe(record)

    def describe_state_machine_for_execution(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.store.transaction() as tx:
            record = self.execution(tx, request.get("executionArn"))
            machine = tx.get_machine(record.machine_arn)
        described: dict[str, Any] = {
            "stateMachineArn": record.machine_arn,
            "name": record.machine_arn.rsplit(":", 1)[-1],
            "definition": record.definition,
            "roleArn": record.role_arn,
            "updateDate": when(machine.updated_at if machine else record.started_at),
        }
        if machine is not None:
            described["revisionId"] = machine.revision_id
        if record.started_with != record.machine_arn:
            described["stateMachineVersionArn"] = record.started_with
        return described

    def list_executions(self, request: Mapping[str, Any]) -> dict[str, Any]:
        machine_arn = request.get("stateMachineArn")
        status = request.get("statusFilter")
        if status is not None and status not in STATUSES:
            raise ValidationException(
                f"1 validation error detected: Value '{status}' at 'statusFilter' failed to "
                f"satisfy constraint: Member must satisfy enum value set: {list(STATUSES)}"
            )
        limit = request.get("maxResults", 0) or 100
        if not isinstance(limit, int) or not 0 < limit <= 1000:
            raise ValidationException("maxResults: expected 1 to 1000")
        before = _decode_token(request.get("nextToken"))
        with self.store.transaction() as tx:
            if machine_arn is not None:
                self.catalog.machine(tx, machine_arn)
            rows = tx.list_executions(
                machine_arn=machine_arn, status=status, before=before, limit=limit + 1
            )
        result: dict[str, Any] = {"executions": [summary(r) for r in rows[:limit]]}
        if len(rows) > limit:
            last = rows[limit - 1]
            result["nextToken"] = _encode_token((last.started_at, last.arn))
        return result

    def get_execution_history(self, request: Mapping[str, Any]) -> dict[str, Any]:
        limit = request.get("maxResults", 0) or 1000
        if not isinstance(limit, int) or not 0 < limit <= 1000:
            raise ValidationException("maxResults: expected 1 to 1000")
        reverse = bool(request.get("reverseOrder", False))
        include_data = request.get("includeExecutionData", True) is not False
        token = request.get("nextToken")
        try:
            after = int(token) if token is not None else 0
        except (TypeError, ValueError) as exc:
            raise ValidationException("Invalid nextToken") from exc
        with self.store.transaction() as tx:
            record = self.execution(tx, request.get("executionArn"))
            rows = tx.list_events(record.arn, after_id=after, limit=limit + 1, reverse=reverse)
        result: dict[str, Any] = {"events": [event_shape(r, include_data) for r in rows[:limit]]}
        if len(rows) > limit:
            result["nextToken"] = str(rows[limit - 1].id)
        return result

    # ------------------------------------------------------------------ stop and redrive

    def stop_execution(self, request: Mapping[str, Any]) -> dict[str, Any]:
        error = request.get("error")
        cause = request.get("cause")
        now = self.clock()
        outcome = Outcome()
        with self.store.transaction() as tx:
            record = self.execution(tx, request.get("executionArn"))
            if record.status == "RUNNING":
                record = advance(
                    tx, record, now, self.transition_context(), outcome, extra=[Stop(error, cause)]
                )
        self.accept(outcome)
        return {"stopDate": when(record.stopped_at or now)}

    def redrive_execution(self, request: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        outcome = Outcome()
        with self.store.transaction() as tx:
            record = self.execution(tx, request.get("executionArn"))
            if record.status not in ("FAILED", "TIMED_OUT", "ABORTED"):
                raise ExecutionNotRedrivable(
                    f"Execution is {record.status}; only FAILED, TIMED_OUT or ABORTED "
                    "executions can be redriven"
                )
            if record.stopped_at is not None and now - record.stopped_at > REDRIVE_WINDOW:
                raise ExecutionNotRedrivable("Execution can no longer be redriven (14 days)")
            if record.machine_type == "EXPRESS":
                raise ExecutionNotRedrivable("Express executions cannot be redriven")
            record = replace(
                record, redrive_count=record.redrive_count + 1, redriven_at=now, stopped_at=None
            )
            record = advance(tx, record, now, self.transition_context(), outcome, redrive=True)
            if record.status == "RUNNING":
                record = replace(record, output=None, error=None, cause=None)
                tx.update_execution(record)
        self.accept(outcome)
        return {"redriveDate": when(now)}

    # ------------------------------------------------------------------ task callbacks

    def _task_signal(self, token: object, make: Callable[[str], Any]) -> None:
        if not isinstance(token, str) or not 1 <= len(token) <= 2048:
            raise InvalidToken("Invalid Token: 'taskToken'")
        now = self.clock()
        with self.store.transaction() as tx:
            task = tx.get_task(token)
            if task is None:
                raise TaskDoesNotExist(
                    "Task Does Not Exist: the task token is unknown or the "
                    "task has already finished"
                )
            signal = make(token)
            if not isinstance(signal, TaskHeartbeat):
                tx.delete_tasks([token])
            tx.add_signals([(task.execution_arn, now, codec.encode_signal(signal))])
        self.accept(Outcome(touched={task.execution_arn}))

    def send_task_success(self, request: Mapping[str, Any]) -> dict[str, Any]:
        output = parse_payload(request.get("output"), "output", InvalidOutput)
        self._task_signal(request.get("taskToken"), lambda t: TaskSucceeded(t, output))
        return {}

    def send_task_failure(self, request: Mapping[str, Any]) -> dict[str, Any]:
        error, cause = request.get("error"), request.get("cause")
        for value, field, limit in ((error, "error", 256), (cause, "cause", 32768)):
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                raise ValidationException(f"{field}: expected a string of at most {limit} chars")
        self._task_signal(request.get("taskToken"), lambda t: TaskFailed(t, error, cause))
        return {}

    def send_task_heartbeat(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self._task_signal(request.get("taskToken"), TaskHeartbeat)
        return {}


# --------------------------------------------------------------------------- shapes


def summary(record: ExecutionRecord) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "executionArn": record.arn,
        "stateMachineArn": record.machine_arn,
        "name": record.name,
        "status": record.status,
        "startDate": when(record.started_at),
    }
    if record.stopped_at is not None:
        shaped["stopDate"] = when(record.stopped_at)
    if record.redrive_count:
        shaped["redriveCount"] = record.redrive_count
        if record.redriven_at is not None:
            shaped["redriveDate"] = when(record.redriven_at)
    if record.started_with != record.machine_arn:
        key = (
            "stateMachineVersionArn"
            if record.started_with.rsplit(":", 1)[-1].isdigit()
            else "stateMachineAliasArn"
        )
        shaped[key] = record.started_with
    return shaped


def describe(record: ExecutionRecord) -> dict[str, Any]:
    shaped = summary(record)
    shaped["input"] = record.input
    shaped["inputDetails"] = {"included": True}
    if record.status == "SUCCEEDED" and record.output is not None:
        shaped["output"] = record.output
        shaped["outputDetails"] = {"included": True}
    if record.error is not None:
        shaped["error"] = record.error
    if record.cause is not None:
        shaped["cause"] = record.cause
    shaped["redriveCount"] = record.redrive_count
    shaped["redriveStatus"] = (
        "REDRIVABLE"
        if record.status in ("FAILED", "TIMED_OUT", "ABORTED") and record.machine_type == "STANDARD"
        else "NOT_REDRIVABLE"
    )
    return shaped


def event_shape(record: EventRecord, include_data: bool = True) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "timestamp": when(record.timestamp),
        "type": record.type,
        "id": record.id,
        "previousEventId": record.previous_id,
    }
    details = json.loads(record.details)
    if details:
        if not include_data:
            for key in ("input", "output", "parameters"):
                details.pop(key, None)
        shaped[detail_key(record.type)] = details
    return shaped


def payload_size_ok(value: Any) -> bool:
    return size_in_bytes(value) <= PAYLOAD_LIMIT
