"""The durable engine: one object that owns the catalog, the executions and the worker.

It is built by the composition root with its store, clock, randomness and
function registry, and offers every Step Functions action as a method taking
and returning the API's shapes. ``start()`` runs the worker loop in a thread;
tests may instead call :meth:`Engine.run_until_idle` to drive it step by step.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dirigent.asl.scope import Entropy
from dirigent.engine import codec
from dirigent.engine.arns import Arns, check_name
from dirigent.engine.catalog import Catalog, when
from dirigent.engine.dispatch import Resolver, direct
from dirigent.engine.errors import (
    InvalidArn,
    ServiceError,
    StateMachineTypeNotSupported,
    ValidationException,
)
from dirigent.engine.executions import Executions, random_hex
from dirigent.engine.functions import FunctionRegistry
from dirigent.engine.transitions import Context, Outcome, Resident
from dirigent.engine.worker import Worker
from dirigent.entropy import SystemEntropy
from dirigent.store.port import Store, Transaction
from dirigent.store.records import ExecutionRecord, TaskRecord
from dirigent.workflow.signals import ScheduleTask, TaskFailed, TaskStarted, TaskSucceeded

#: how long GetActivityTask waits for a task before answering with none (AWS: 60 s)
ACTIVITY_POLL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class EngineSettings:
    region: str = "us-east-1"
    account: str = "123456789012"
    batch: int = 128
    pool_size: int = 8
    lease_seconds: float = 60.0
    idle_poll: float = 0.25
    activity_poll_seconds: float = ACTIVITY_POLL_SECONDS


def _node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        settings: EngineSettings | None = None,
        functions: FunctionRegistry | None = None,
        clock: Callable[[], float] = time.time,
        entropy: Entropy | None = None,
        resolve: Resolver | None = None,
        node: str | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        self.store = store
        self.clock = clock
        self.entropy = entropy or SystemEntropy()
        self.functions = functions or FunctionRegistry()
        self.node = node or _node_name()
        self.arns = Arns(self.settings.region, self.settings.account)
        self.catalog = Catalog(store, self.arns, clock)
        self.context = Context(
            worker=self.node,
            entropy=self.entropy,
            lease_seconds=self.settings.lease_seconds,
            runs_tasks=False,
            start_child=self._start_child,
            resident=Resident(),
        )
        self.worker = Worker(
            store,
            self.context,
            self.functions,
            resolve or direct,
            clock,
            batch=self.settings.batch,
            pool_size=self.settings.pool_size,
            idle_poll=self.settings.idle_poll,
        )
        self.executions = Executions(
            store,
            self.arns,
            self.catalog,
            clock,
            lambda: self.context,
            self.worker.accept,
            self._pick,
            loop=self.worker,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._run_tasks_here()
        self.worker.start()

    def _run_tasks_here(self) -> None:
        self.context = replace(self.context, runs_tasks=True)
        self.worker.context = self.context

    def stop(self) -> None:
        self.worker.stop()

    def run_until_idle(self, timeout: float = 10.0) -> None:
        """Advance in this thread until no work is due now (tests and tools)."""
        self._run_tasks_here()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            advanced, _ = self.worker.run_once()
            if not advanced and not self.worker.pending_results():
                return
            if not advanced:
                time.sleep(0.001)
        raise TimeoutError("the engine did not become idle")

    def _pick(self, weights: list[float]) -> int:
        total = sum(weights)
        point = self.entropy.random_float(None) * total
        for index, weight in enumerate(weights):
            point -= weight
            if point < 0:
                return index
        return len(weights) - 1

    # ------------------------------------------------------------------ child executions

    def _start_child(
        self,
        tx: Transaction,
        parent: ExecutionRecord,
        command: ScheduleTask,
        now: float,
        outcome: Outcome,
    ) -> None:
        """``arn:aws:states:::states:startExecution[.sync[:2]]``, inside the parent's transition."""
        params = command.parameters if isinstance(command.parameters, dict) else {}
        signals: list[str] = [codec.encode_signal(TaskStarted(command.token))]
        try:
            machine, definition, role, started_with = self.catalog.resolve_target(
                tx, params.get("StateMachineArn"), self._pick
            )
            name = params.get("Name")
            name = check_name(name) if name is not None else random_hex(16)
            child_input = params.get("Input", {})
            if isinstance(child_input, str):
                child_input = json.loads(child_input)
            record = ExecutionRecord(
                arn=self.arns.execution(machine.name, name),
                machine_arn=machine.arn,
                name=name,
                status="RUNNING",
                input=json.dumps(child_input),
                started_at=now,
                started_with=started_with,
                definition=definition,
                role_arn=role,
                token_prefix=random_hex(12) + ":",
                machine_type=machine.type,
                parent_arn=parent.arn if command.sync else None,
                parent_token=command.token if command.sync else None,
            )
            Executions.insert(tx, record, now)
            outcome.touched.add(record.arn)
            if command.sync:
                # The child's end will answer the parent; keep a row so the token is known.
                tx.put_tasks(
                    [
                        TaskRecord(
                            command.token,
                            parent.arn,
                            "child",
                            codec.encode_task(command),
                            "waiting",
                            now,
                        )
                    ]
                )
            else:
                signals.append(
                    codec.encode_signal(
                        TaskSucceeded(
                            command.token,
                            {"ExecutionArn": record.arn, "StartDate": int(now * 1000)},
                        )
                    )
                )
        except (ValidationException, InvalidArn, ValueError) as exc:
            signals.append(
                codec.encode_signal(
                    TaskFailed(
                        command.token,
                        "StepFunctions.ValidationException"
                        if isinstance(exc, ValidationException)
                        else "States.TaskFailed",
                        str(exc),
                    )
                )
            )
        except ServiceError as exc:
            code = exc.code
            signals.append(
                codec.encode_signal(TaskFailed(command.token, f"StepFunctions.{code}", str(exc)))
            )
        tx.add_signals([(parent.arn, now, body) for body in signals])
        outcome.touched.add(parent.arn)

    # ------------------------------------------------------------------ activities

    def get_activity_task(
        self, request: Mapping[str, Any], cancelled: Callable[[], bool] = lambda: False
    ) -> dict[str, Any]:
        """Long-poll for a task of an activity: ``{"taskToken", "input"}`` or ``{}``.

        ``cancelled`` says the caller went away (its client disconnected, its
        server is stopping): the poll ends with ``{}`` before its next claim, so
        no task is handed to a worker that will never see it. A task claimed in
        the moment the caller leaves is lost to it as on AWS, and comes back
        through its timeouts.
        """
        worker_name = request.get("workerName")
        with self.store.transaction() as tx:
            activity = self.catalog.activity(tx, request.get("activityArn"))
        deadline = time.monotonic() + self.settings.activity_poll_seconds
        while True:
            if cancelled():
                return {}
            now = self.clock()
            with self.store.transaction() as tx:
                task = tx.claim_activity_task(
                    activity.arn, now + 365 * 86400, str(worker_name or self.node)
                )
                if task is not None:
                    command = codec.decode_task(task.command)
                    tx.add_signals(
                        [
                            (
                                task.execution_arn,
                                now,
                                codec.encode_signal(TaskStarted(task.token, worker_name)),
                            )
                        ]
                    )
            if task is not None:
                self.worker.wake()
                return {"taskToken": task.token, "input": json.dumps(command.parameters)}
            if time.monotonic() >= deadline:
                return {}
            time.sleep(0.05)

    # ------------------------------------------------------------------ sync executions

    def start_sync_execution(
        self, request: Mapping[str, Any], cancelled: Callable[[], bool] = lambda: False
    ) -> dict[str, Any]:
        """``StartSyncExecution``: Express machines only, as on AWS; waits for the end.

        Once ``cancelled`` (the caller went away) it stops waiting; the
        execution runs on, as on AWS.
        """
        target = request.get("stateMachineArn")
        base = ":".join(str(target).split(":")[:7])
        described_machine = self.catalog.describe_state_machine({"stateMachineArn": base})
        if described_machine["type"] != "EXPRESS":
            raise StateMachineTypeNotSupported(
                "This operation is only supported by Express state machines"
            )
        started = self.executions.start_execution(request)
        arn = started["executionArn"]
        deadline = time.monotonic() + 300
        pause = 0.002
        while time.monotonic() < deadline:
            described = self.executions.describe_execution({"executionArn": arn})
            if described["status"] != "RUNNING" or cancelled():
                described.pop("redriveCount", None)
                described.pop("redriveStatus", None)
                return described
            # Backing off: each look is a transaction competing with the worker.
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        raise ValidationException("the execution did not finish within 5 minutes")

    def stop_date(self, seconds: float) -> Any:
        return when(seconds)
