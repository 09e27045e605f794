"""Executions survive ``kill -9`` of the engine, with nothing lost and nothing applied twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dirigent.engine import Engine
from dirigent.store import open_store
from dirigent.store.port import Store
from tests.integration.engine import workload

REPO = Path(__file__).resolve().parents[3]


class Node:
    """An engine node in its own process, which the test may kill at any moment."""

    def __init__(self, url: str, log: Path) -> None:
        with log.open("ab") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.engine.node", url],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.process.stdout.close()
        assert line.strip() == "ready", log.read_text()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


def _statuses(store: Store, arns: list[str]) -> Counter[str]:
    with store.transaction() as tx:
        return Counter(
            record.status for arn in arns if (record := tx.get_execution(arn)) is not None
        )


def _wait_until_done(store: Store, arns: list[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = _statuses(store, arns)
        if statuses.get("RUNNING", 0) == 0:
            return statuses
        time.sleep(0.2)
    return _statuses(store, arns)


def _start(engine: Engine, count: int) -> list[str]:
    machine = engine.catalog.create_state_machine(
        {"name": "crashy", "definition": workload.definition_text(), "roleArn": "arn:r"}
    )["stateMachineArn"]
    return [
        engine.executions.start_execution(
            {
                "stateMachineArn": machine,
                "name": f"order-{n}",
                "input": json.dumps(workload.execution_input(n)),
            }
        )["executionArn"]
        for n in range(count)
    ]


def _check_histories(store: Store, arns: list[str]) -> None:
    with store.transaction() as tx:
        for n, arn in enumerate(arns):
            record = tx.get_execution(arn)
            assert record is not None
            assert record.status == "SUCCEEDED", (arn, record.error, record.cause)
            assert json.loads(record.output or "null") == workload.expected_output(n)
            events = tx.list_events(arn, after_id=0, limit=10_000, reverse=False)
            assert [e.id for e in events] == list(range(1, len(events) + 1)), arn
            assert record.event_count == len(events)
            kinds = Counter(e.type for e in events)
            # Each state runs exactly once: AddOne, Double, three Squares.
            assert kinds["TaskStateEntered"] == 5, (arn, kinds)
            assert kinds["LambdaFunctionSucceeded"] == 5, (arn, kinds)
            assert kinds["WaitStateExited"] == 1
            assert kinds["MapIterationSucceeded"] == 3
            assert kinds["ExecutionSucceeded"] == 1
            assert kinds["ExecutionStarted"] == 1


@pytest.mark.slow
def test_kill_9_during_200_executions_loses_nothing_and_repeats_nothing(
    tmp_path: Path, nodes: list[Node]
) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    store = open_store(url)
    arns = _start(Engine(store), 200)
    nodes.append(Node(url, tmp_path / "node.log"))
    # Kill while the Waits are pending and some tasks are in flight.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        statuses = _statuses(store, arns)
        if statuses.get("SUCCEEDED", 0) >= 20:
            break
        time.sleep(0.05)
    nodes[0].kill()
    before = _statuses(store, arns)
    assert before.get("RUNNING", 0) > 0, f"nothing was running at the kill: {before}"
    nodes.append(Node(url, tmp_path / "node.log"))
    statuses = _wait_until_done(store, arns, timeout=90)
    assert statuses == Counter({"SUCCEEDED": 200}), statuses
    _check_histories(store, arns)
    store.close()


@pytest.mark.slow
def test_waits_fire_on_time_after_a_restart(tmp_path: Path, nodes: list[Node]) -> None:
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    store = open_store(url)
    engine = Engine(store)
    definition = {
        "StartAt": "Nap",
        "States": {"Nap": {"Type": "Wait", "Seconds": 1, "End": True}},
    }
    machine = engine.catalog.create_state_machine(
        {"name": "naps", "definition": json.dumps(definition), "roleArn": "arn:r"}
    )["stateMachineArn"]
    nodes.append(Node(url, tmp_path / "node.log"))
    arns = [
        engine.executions.start_execution({"stateMachineArn": machine, "name": f"nap-{n}"})[
            "executionArn"
        ]
        for n in range(100)
    ]
    time.sleep(0.3)
    nodes[0].kill()
    nodes.append(Node(url, tmp_path / "node.log"))
    statuses = _wait_until_done(store, arns, timeout=30)
    assert statuses == Counter({"SUCCEEDED": 100}), statuses
    lateness = []
    with store.transaction() as tx:
        for arn in arns:
            events = {e.type: e for e in tx.list_events(arn, after_id=0, limit=100, reverse=False)}
            entered = events["WaitStateEntered"].timestamp
            exited = events["WaitStateExited"].timestamp
            lateness.append(exited - entered - 1.0)
    store.close()
    print(
        f"Wait lateness after a restart: max {max(lateness) * 1000:.1f} ms, "
        f"median {sorted(lateness)[50] * 1000:.1f} ms"
    )
    assert min(lateness) >= 0, "a Wait ended early"
    # Generous for a loaded CI machine; bench/engine reports the precise figure.
    assert max(lateness) < 0.1 * 5, f"latest Wait ended {max(lateness):.3f} s late"


@pytest.mark.slow
def test_three_postgres_nodes_share_1000_executions_and_survive_losing_one(
    tmp_path: Path, nodes: list[Node], postgres_url: str
) -> None:
    store = open_store(postgres_url)
    arns = _start(Engine(store), 1000)
    nodes.extend(Node(postgres_url, tmp_path / "node.log") for _ in range(3))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _statuses(store, arns).get("SUCCEEDED", 0) >= 300:
            break
        time.sleep(0.1)
    nodes[1].kill()
    assert _statuses(store, arns).get("RUNNING", 0) > 0
    statuses = _wait_until_done(store, arns, timeout=240)
    assert statuses == Counter({"SUCCEEDED": 1000}), statuses
    _check_histories(store, arns)
    store.close()
