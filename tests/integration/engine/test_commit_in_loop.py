"""Writes from other threads ride the worker loop's transactions.

``Worker.commit_in_loop`` is how StartExecution shares the loop's commits while
the loop runs: many callers, few transactions, each caller its own answer or
its own error, and the caller's own transaction when the loop is not there.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dirigent.engine import Engine, EngineSettings, FunctionRegistry
from dirigent.engine.errors import ServiceError
from dirigent.engine.transitions import Outcome, Writes
from dirigent.store import Store, open_store
from dirigent.store.port import Transaction


class Refused(ServiceError):
    code = "Refused"


class CountingStore:
    """A real SQLite store that counts the transactions that write signals.

    ``slow``: each such transaction takes that long more (a slow disk), so
    that requests arriving meanwhile pile up behind it.
    """

    def __init__(self, inner: Store, slow: float = 0.0) -> None:
        self.inner = inner
        self.url = inner.url
        self.slow = slow
        self.writing = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.inner.transaction() as tx:
            wrote: list[int] = []
            yield _Counted(tx, wrote)  # type: ignore[misc]
            if wrote:
                time.sleep(self.slow)
        if wrote:
            self.writing += 1

    def close(self) -> None:
        self.inner.close()


class _Counted:
    def __init__(self, tx: Transaction, wrote: list[int]) -> None:
        self._tx = tx
        self._wrote = wrote

    def add_signals(self, signals: Any) -> None:
        if signals:
            self._wrote.append(len(signals))
        self._tx.add_signals(signals)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def _signal(n: int) -> Any:
    def run(tx: Transaction, writes: Writes, outcome: Outcome) -> int:
        if n % 7 == 3:
            raise Refused(f"{n} is refused")
        writes.signals.append((f"execution-{n}", 0.0, f"signal-{n}"))
        return n * 2

    return run


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, CountingStore]]:
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'loop.db'}"))
    built = Engine(store)  # type: ignore[arg-type]
    built.start()
    yield built, store
    built.stop()
    store.close()


def test_many_callers_share_the_loops_transactions_each_with_its_own_answer(
    engine: tuple[Engine, CountingStore],
) -> None:
    built, store = engine
    store.slow = 0.02
    answers: dict[int, Any] = {}

    def call(n: int) -> None:
        try:
            answers[n] = built.worker.commit_in_loop(_signal(n))
        except Refused as exc:
            answers[n] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    refused = [n for n in range(60) if n % 7 == 3]
    assert {n: a for n, a in answers.items() if n not in refused} == {
        n: n * 2 for n in range(60) if n not in refused
    }
    assert all(isinstance(answers[n], Refused) for n in refused)
    with store.inner.transaction() as tx:
        kept = {n for n in range(60) if tx.due_signals(f"execution-{n}", 1.0)}
    # A refused request wrote nothing; every other one committed.
    assert kept == set(range(60)) - set(refused)
    # One transaction each would be len(kept); behind a slow commit they share.
    assert store.writing <= len(kept) // 3, store.writing


def test_a_failed_transaction_fails_every_request_in_it(
    engine: tuple[Engine, CountingStore],
) -> None:
    built, _ = engine

    def broken(tx: Transaction, writes: Writes, outcome: Outcome) -> None:
        raise RuntimeError("the disk is gone")

    with pytest.raises(RuntimeError, match="the disk is gone"):
        built.worker.commit_in_loop(broken)
    # The loop goes on serving.
    assert built.worker.commit_in_loop(_signal(1)) == 2


def test_without_the_loop_the_caller_commits_itself(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'alone.db'}")
    built = Engine(store)
    try:
        assert not built.worker.running
        assert built.worker.commit_in_loop(_signal(2)) == 4
        with store.transaction() as tx:
            assert [s.body for s in tx.due_signals("execution-2", 1.0)] == ["signal-2"]
    finally:
        store.close()


def test_a_start_handed_to_the_loop_is_answered_once_committed(
    engine: tuple[Engine, CountingStore],
) -> None:
    built, store = engine
    arn = built.catalog.create_state_machine(
        {
            "name": "handed",
            "definition": '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
            "roleArn": "arn:aws:iam::1:role/r",
        }
    )["stateMachineArn"]
    settled = threading.Event()
    answers: list[tuple[Any, BaseException | None]] = []

    def settle(answer: Any, error: BaseException | None) -> None:
        answers.append((answer, error))
        settled.set()

    request = {"stateMachineArn": arn, "name": "one", "input": '{"a": 1}'}
    assert built.executions.start_execution_then(request, settle)
    assert settled.wait(10)
    [(answer, error)] = answers
    assert error is None
    # Committed by the time it is answered: another connection sees it.
    with store.inner.transaction() as tx:
        assert tx.get_execution(answer["executionArn"]) is not None


def _waiting_machine(built: Engine, name: str) -> str:
    """A machine whose executions wait a minute: they stay RUNNING, names taken."""
    wait = json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
    )
    arn: str = built.catalog.create_state_machine(
        {"name": name, "definition": wait, "roleArn": "arn:aws:iam::1:role/r"}
    )["stateMachineArn"]
    return arn


def test_repeated_starts_in_one_batch_each_get_their_own_answer(
    engine: tuple[Engine, CountingStore],
) -> None:
    """The loop inserts a batch's new executions in one statement; a name taken
    already must still answer that start alone, as AWS does: the same input
    gets the running execution back, another input ExecutionAlreadyExists."""
    built, store = engine
    arn = _waiting_machine(built, "repeated")
    first = built.executions.start_execution({"stateMachineArn": arn, "name": "taken"})
    store.slow = 0.05  # requests pile up behind each commit: one batch holds them all
    settled: list[tuple[str, Any, BaseException | None]] = []
    done = threading.Semaphore(0)
    requests = {
        "same": {"stateMachineArn": arn, "name": "taken"},
        "other-input": {"stateMachineArn": arn, "name": "taken", "input": '{"x": 1}'},
        **{f"new-{n}": {"stateMachineArn": arn, "name": f"new-{n}"} for n in range(5)},
    }

    def settle_as(key: str) -> Any:
        def settle(answer: Any, error: BaseException | None) -> None:
            settled.append((key, answer, error))
            done.release()

        return settle

    # Something for the loop to commit first, slowly, so the starts share the next batch.
    built.worker.commit_in_loop_then(_signal(1), lambda answer, error: None)
    for key, request in requests.items():
        assert built.executions.start_execution_then(request, settle_as(key))
    for _ in requests:
        assert done.acquire(timeout=10)
    answers = {key: (answer, error) for key, answer, error in settled}
    assert answers["same"] == ({"executionArn": first["executionArn"],
                                "startDate": first["startDate"]}, None)  # fmt: skip
    other_answer, other_error = answers["other-input"]
    assert other_answer is None
    assert isinstance(other_error, ServiceError)
    assert other_error.code == "ExecutionAlreadyExists"
    with store.inner.transaction() as tx:
        for n in range(5):
            answer, error = answers[f"new-{n}"]
            assert error is None
            record = tx.get_execution(answer["executionArn"])
            assert record is not None
            assert record.status == "RUNNING"
            assert record.event_count > 0  # its first transition committed with it
        assert tx.get_execution(first["executionArn"]).input == "{}"  # type: ignore[union-attr]


def test_starts_left_when_the_loop_stops_are_answered_even_with_a_taken_name(
    engine: tuple[Engine, CountingStore],
) -> None:
    """Worker.stop commits what is still queued in one last iteration: a taken
    name among the starts must not leave that batch unanswered."""
    built, store = engine
    arn = _waiting_machine(built, "stopping")
    built.executions.start_execution({"stateMachineArn": arn, "name": "taken"})
    store.slow = 0.3
    settled: dict[str, tuple[Any, BaseException | None]] = {}
    built.worker.commit_in_loop_then(_signal(1), lambda answer, error: None)
    time.sleep(0.05)  # the loop is in that slow transaction now
    for name in ("taken", "new"):
        assert built.executions.start_execution_then(
            {"stateMachineArn": arn, "name": name},
            lambda answer, error, name=name: settled.__setitem__(name, (answer, error)),
        )
    built.stop()
    assert set(settled) == {"taken", "new"}
    assert settled["taken"][1] is None
    assert settled["new"][1] is None
    with store.inner.transaction() as tx:
        assert tx.get_execution(settled["new"][0]["executionArn"]) is not None


def test_a_bad_start_handed_to_the_loop_fails_at_once_and_stores_nothing(
    engine: tuple[Engine, CountingStore],
) -> None:
    built, store = engine
    with pytest.raises(ServiceError):
        built.executions.start_execution_then(
            {"stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:x", "input": "{"},
            lambda answer, error: None,
        )
    with store.inner.transaction() as tx:
        assert tx.list_executions(machine_arn=None, status=None, before=None, limit=10) == []


def test_a_start_is_not_handed_over_without_the_loop(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'alone.db'}")
    try:
        called: list[object] = []
        assert not Engine(store).executions.start_execution_then({}, lambda a, e: called.append(a))
        assert called == []
    finally:
        store.close()


def test_an_execution_run_alone_costs_one_transaction_per_transition(tmp_path: Path) -> None:
    # A start and three Task states: four transitions, four transactions. A
    # loop waking up with nothing to write or to read opens none.
    store = CountingStore(open_store(f"sqlite:///{tmp_path / 'alone.db'}"))
    counted = _TransactionCount(store)
    built = Engine(
        counted,  # type: ignore[arg-type]
        settings=EngineSettings(idle_poll=30.0),
        functions=FunctionRegistry({"echo": lambda event: event}),
    )
    task = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:echo"}
    definition = {
        "StartAt": "A",
        "States": {
            "A": {**task, "Next": "B"},
            "B": {**task, "Next": "C"},
            "C": {**task, "End": True},
        },
    }
    arn = built.catalog.create_state_machine(
        {"name": "alone", "definition": json.dumps(definition), "roleArn": "arn:aws:iam::1:role/r"}
    )["stateMachineArn"]
    built.start()
    try:
        time.sleep(0.2)  # the loop's first look at the store (leases to reclaim) is done
        counted.transactions = 0
        execution = built.executions.start_execution({"stateMachineArn": arn, "input": "{}"})
        deadline = time.monotonic() + 10
        while built.executions.describe_execution(execution)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.01)
        described = counted.transactions
        time.sleep(0.2)
    finally:
        built.stop()
        store.close()
    # Every describe_execution above is a transaction of its own, counted apart.
    assert described - counted.reads == 4
    assert counted.transactions - counted.reads == 4


class _TransactionCount:
    """A store that counts its transactions, and those that were describe reads."""

    def __init__(self, inner: CountingStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.transactions = 0
        self.reads = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.transactions += 1
        with self.inner.transaction() as tx:
            yield _Reads(tx, self)  # type: ignore[misc]

    def close(self) -> None:
        self.inner.close()


class _Reads:
    def __init__(self, tx: Transaction, count: _TransactionCount) -> None:
        self._tx = tx
        self._count = count

    def get_execution(self, arn: str) -> Any:
        self._count.reads += 1
        return self._tx.get_execution(arn)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)
