"""The demo's shell: bring the shop up, drive orders through it, break things, take it down.

It uses the same doors a person would: ``up --detach`` (the runtime's
:func:`~dirigent.runtime.host.spawn_detached`), the control socket for ``ps``
and ``down``, the Step Functions API through the SDK for orders, ``kill -9``
for a replica, and each service's ``GET /records`` for the books the checker
reads. Everything it starts it stops: :meth:`ShopDemo.close` runs ``down``
and reaps the ``up`` process, whatever happened before.

Waits go through the ``stop`` event, so Ctrl-C (whose handler only sets it)
ends the run within a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

from dirigent.demo.invariants import Kill, Outcome, PlannedOrder, ShopRecords
from dirigent.errors import DirigentError
from dirigent.runtime.channel import NotRunning, call
from dirigent.runtime.control import Down, InjectFault, ListReplicas, Refused, Request, Status
from dirigent.runtime.host import AppPaths, spawn_detached
from dirigent.sdk import StepFunctions

MACHINE = "order"
#: how the demo slows payments down: the mesh's fault injection, as `dirigent fault` does it
LATENCY_FAULT = "the mesh delays payments' requests (dirigent fault payments --delay ...)"
START_TIMEOUT = 120.0
ANSWER_TIMEOUT = 30.0
DOWN_TIMEOUT = 120.0


class DemoError(DirigentError):
    """The demo could not run (the shop is already up, would not start...)."""


class Interrupted(DirigentError):
    """The stop event was set (Ctrl-C, SIGTERM)."""


@dataclass
class Progress:
    """What the run has seen so far; the summary is made from it."""

    started: dict[str, str] = field(default_factory=dict)  # order id -> execution ARN
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)  # finished order id -> retries
    kills: list[Kill] = field(default_factory=list)
    restarts: int = 0

    def counts(self) -> dict[str, int]:
        ended = list(self.outcomes.values())
        return {
            "running": len(self.started) - len(ended),
            "completed": sum(o.status == "SUCCEEDED" for o in ended),
            "compensated": sum(_compensated(o) for o in ended),
            "failed": sum(o.status != "SUCCEEDED" and not _compensated(o) for o in ended),
        }


def _compensated(outcome: Outcome) -> bool:
    # The workflow fails every compensated order with an ``Order.*`` error, after
    # compensating; any other ending (a bug, a timeout of the whole execution) is a failure.
    return outcome.status == "FAILED" and (outcome.error or "").startswith("Order.")


class ShopDemo:
    def __init__(self, manifest: Path, api_port: int, stop: Event, say: Callable[[str], None]):
        self.paths = AppPaths.for_manifest(manifest)
        self.api = f"http://127.0.0.1:{api_port}"
        self._port = api_port
        self._stop = stop
        self.say = say
        self._pid: int | None = None
        self._client: StepFunctions | None = None
        self.machine_arn = ""

    # ------------------------------------------------------------------ up and down

    def start(self) -> None:
        try:
            self._ask(Status(), timeout=5)
        except NotRunning:
            pass
        else:
            raise DemoError(
                f"the shop is already running in {self.paths.app_dir}; "
                f"stop it with: dirigent down -f {self.paths.manifest}"
            )
        # A fresh shop: the services' books start empty, so the checker judges this run only.
        shutil.rmtree(self.paths.state_dir / "data", ignore_errors=True)
        # The replicas inherit the environment of `up`: the venv's python3 first on
        # PATH (the reviewer imports the SDK) and the API address for the reviewer.
        venv_bin = str(Path(sys.executable).parent)
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["DIRIGENT_SERVER"] = self.api
        self._pid = spawn_detached(self.paths, ["--api-port", str(self._port)])
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if os.waitpid(self._pid, os.WNOHANG)[0]:
                self._pid = None
                raise DemoError(f"dirigent up exited at start:\n{self._log_tail()}")
            try:
                status = self._ask(Status(), timeout=5)
            except NotRunning:
                status = {}
            if status.get("settled") and status.get("control_plane"):
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the shop was not ready in {START_TIMEOUT:.0f} s (see dirigent ps)"
                )
            self._wait(0.1)
        self._client = StepFunctions.from_environment(self.api, data_dir=self.paths.state_dir)
        self.machine_arn = f"arn:aws:states:us-east-1:123456789012:stateMachine:{MACHINE}"

    def close(self) -> None:
        """``dirigent down`` and reap ``up``; safe to call whatever state the run is in."""
        if self._pid is None:
            return
        with contextlib.suppress(NotRunning, DirigentError, OSError):
            self._ask(Down(), timeout=DOWN_TIMEOUT)
        deadline = time.monotonic() + DOWN_TIMEOUT
        while not os.waitpid(self._pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:  # a wedged up: it is ours, so end it
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
                break
            time.sleep(0.05)
        self._pid = None

    # ------------------------------------------------------------------ orders

    @property
    def client(self) -> StepFunctions:
        assert self._client is not None, "start() first"
        return self._client

    def submit(self, order: PlannedOrder, progress: Progress) -> None:
        arn = self.client.start_execution(self.machine_arn, order.as_input(), name=order.order_id)
        progress.started[order.order_id] = arn

    def poll(self, progress: Progress) -> None:
        """Note the executions that ended since the last poll, and the restarts so far."""
        for order_id, arn in progress.started.items():
            if order_id in progress.outcomes:
                continue
            described = self.client.describe_execution(arn)
            if described["status"] != "RUNNING":
                progress.outcomes[order_id] = Outcome(described["status"], described.get("error"))
                progress.retries[order_id] = self.retries(arn)
        progress.restarts = sum(int(r.get("restarts") or 0) for r in self.replicas())

    def retries(self, execution_arn: str) -> int:
        """Task attempts beyond the first: one per task state entered, more for each retry."""
        scheduled = entered = 0
        token: str | None = None
        while True:
            body: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                body["nextToken"] = token
            page = self.client.call("GetExecutionHistory", body)
            for event in page.get("events", []):
                scheduled += event["type"] == "TaskScheduled"
                entered += event["type"] == "TaskStateEntered"
            token = page.get("nextToken")
            if not token:
                return max(0, scheduled - entered)

    # ------------------------------------------------------------------ trouble

    def replicas(self) -> list[dict[str, Any]]:
        rows = self._ask(ListReplicas()).get("replicas")
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    def kill(self, service: str) -> Kill:
        """``kill -9`` one ready replica of ``service``; the runtime is to bring it back."""
        ready = [r for r in self.replicas() if r["service"] == service and r["ready"] and r["pid"]]
        if not ready:
            raise DemoError(f"no ready replica of {service} to kill")
        victim = ready[0]
        at = time.time()
        os.kill(int(victim["pid"]), signal.SIGKILL)
        return Kill(service, str(victim["replica"]), int(victim["pid"]), at)

    def slow_payments(self, delay: float, percent: float) -> None:
        # On the callee's inbound listeners, so every replica of payments is slowed.
        self._ask(InjectFault("payments", delay, percent if delay else 0.0))

    def came_back(self, kill: Kill) -> bool:
        return any(
            r["replica"] == kill.replica and r["ready"] and r["pid"] not in (None, kill.pid)
            for r in self.replicas()
        )

    # ------------------------------------------------------------------ the books

    def records(self) -> ShopRecords:
        tables = {}
        for service in self._services():
            tables[service] = self._get(self._port_of(service), "/records")
        return ShopRecords.from_tables(tables)

    # ------------------------------------------------------------------ plumbing

    def _services(self) -> Sequence[str]:
        return sorted({str(r["service"]) for r in self.replicas()})

    def _port_of(self, service: str) -> int:
        for row in self.replicas():
            if row["service"] == service and row["ready"] and row["port"]:
                return int(row["port"])
        raise DemoError(f"no ready replica of {service}")

    def _get(self, port: int, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body

    def _ask(self, request: Request, timeout: float = ANSWER_TIMEOUT) -> Mapping[str, Any]:
        reply = call(self.paths.app_dir, self.paths.socket, request, timeout=timeout)
        if isinstance(reply, Refused):
            raise DemoError(reply.error)
        return reply.body

    def _wait(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise Interrupted("stopped")

    def _log_tail(self) -> str:
        try:
            return self.paths.detached_log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
