"""Dirigent's side of the engine benchmark: the durable engine, in this process.

One engine on the store a URL names (``sqlite:///PATH`` or ``postgresql://...``)
with the engine's default settings: SQLite in WAL mode with
``synchronous=FULL``, PostgreSQL with the server's ``synchronous_commit``
(on). The workflows are N sequential Task states calling the function
``noop`` (``arn:aws:lambda:...:function:noop``), which returns its input.

How an execution's end is seen: the store is wrapped in :class:`ObservedStore`,
which notices an execution saved with a final status and, once that
transaction has committed, wakes whoever waits for it. No polling, so the
measurement adds no load on the store. Latency is taken to the stop time the
engine records (``stopDate``); the time the final commit returned is kept too,
as ``committed``, since the engine reads its clock before it writes.

usage: .venv/bin/python bench/engine/dirigent_side.py STORE_URL [--sizes 3,10] ...
Prints one JSON line with the figures for each workflow size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from measure import Deadline, concurrent_spans, emit, measure, percentile, sequential

from dirigent.engine import Engine, EngineSettings, FunctionRegistry
from dirigent.store import Store, Transaction, open_store
from dirigent.store.records import ExecutionRecord

NOOP = "arn:aws:lambda:us-east-1:123456789012:function:noop"


def noop(event: Any) -> Any:
    return event


def definition(steps: int) -> dict[str, Any]:
    names = [f"Step{index + 1}" for index in range(steps)]
    states: dict[str, Any] = {}
    for index, name in enumerate(names):
        state: dict[str, Any] = {"Type": "Task", "Resource": NOOP}
        if index + 1 < steps:
            state["Next"] = names[index + 1]
        else:
            state["End"] = True
        states[name] = state
    return {"StartAt": names[0], "States": states}


class _ObservedTx:
    """A transaction that remembers the executions it saves with a final status."""

    def __init__(self, tx: Transaction, stopped: list[ExecutionRecord]) -> None:
        self._tx = tx
        self._stopped = stopped

    def update_execution(self, record: ExecutionRecord) -> None:
        self._tx.update_execution(record)
        if record.status != "RUNNING":
            self._stopped.append(record)

    def update_executions(self, records: list[ExecutionRecord]) -> None:
        self._tx.update_executions(records)
        self._stopped.extend(record for record in records if record.status != "RUNNING")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class ObservedStore:
    """The engine's store, with a hook for executions that stopped (after commit)."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self._store = store
        self.url = store.url
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._stops: dict[str, tuple[ExecutionRecord, float]] = {}

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        stopped: list[ExecutionRecord] = []
        with self._store.transaction() as tx:
            yield _ObservedTx(tx, stopped)  # type: ignore[misc]
        if stopped:
            committed = time.time()
            with self._lock:
                for record in stopped:
                    self._stops[record.arn] = (record, committed)
                    event = self._waiting.get(record.arn)
                    if event is not None:
                        event.set()

    def expect(self, arn_suffix: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiting[arn_suffix] = event
        return event

    def take(self, arn: str) -> tuple[ExecutionRecord, float]:
        with self._lock:
            self._waiting.pop(arn, None)
            return self._stops.pop(arn)

    def close(self) -> None:
        self._store.close()


class Side:
    def __init__(self, url: str, deadline: Deadline) -> None:
        self.store = ObservedStore(open_store(url))
        self.engine = Engine(
            self.store,  # type: ignore[arg-type]
            settings=EngineSettings(),
            functions=FunctionRegistry({"noop": noop}),
        )
        self.deadline = deadline
        self.machines: dict[int, tuple[str, str]] = {}
        #: ms from the start request to the final commit's return, by index
        self.committed: dict[int, float] = {}
        self._run_id = f"{time.time_ns():x}"

    def machine(self, steps: int) -> tuple[str, str]:
        if steps not in self.machines:
            name = f"bench-{steps}-{self._run_id}"
            arn = self.engine.catalog.create_state_machine(
                {
                    "name": name,
                    "definition": json.dumps(definition(steps)),
                    "roleArn": "arn:aws:iam::123456789012:role/bench",
                }
            )["stateMachineArn"]
            execution_prefix = arn.replace(":stateMachine:", ":execution:") + ":"
            self.machines[steps] = (arn, execution_prefix)
        return self.machines[steps]

    def runner(self, steps: int, tag: str) -> Any:
        machine_arn, execution_prefix = self.machine(steps)

        def run_one(index: int) -> tuple[float, float]:
            name = f"{tag}-{index}"
            arn = execution_prefix + name
            done = self.store.expect(arn)
            started = time.time()
            self.engine.executions.start_execution(
                {"stateMachineArn": machine_arn, "name": name, "input": '{"n": 1}'}
            )
            if not done.wait(self.deadline.left()):
                raise TimeoutError(f"{arn} did not finish")
            record, committed = self.store.take(arn)
            if record.status != "SUCCEEDED" or record.stopped_at is None:
                raise RuntimeError(f"{arn} ended {record.status}: {record.error} {record.cause}")
            self.committed[index] = (committed - started) * 1000
            return started, record.stopped_at

        return run_one


def count_statements(side: Side, steps: int, count: int) -> dict[str, float]:
    """SQL statements per execution run one at a time, by their first word (SQLite only).

    The trace callback sits on the SQLite adapter's connection, a private
    attribute: this is instrumentation for the benchmark, not an engine API.
    """
    seen: Counter[str] = Counter()
    connection = side.store.inner._db  # type: ignore[attr-defined]
    connection.set_trace_callback(lambda statement: seen.update([statement.split(None, 1)[0]]))
    try:
        sequential(side.runner(steps, f"s{steps}"), count)
    finally:
        connection.set_trace_callback(None)
    return {kind: n / count for kind, n in sorted(seen.items())}


def node_span(side: Side, steps: int, args: argparse.Namespace) -> dict[str, float]:
    """This node's part of a run on several: warm up, wait for the common start,
    run; the runner puts the nodes' spans together."""
    run = side.runner(steps, f"n{steps}")
    for index in range(args.warmup):
        run(-1 - index)
    wait = args.start_at - time.time()
    if wait < 0:
        raise RuntimeError(f"warm-up ended {-wait:.2f} s after the common start: give more time")
    time.sleep(wait)
    spans = concurrent_spans(run, args.count, args.in_flight)
    return {
        "first_start": min(start for start, _ in spans),
        "last_stop": max(stop for _, stop in spans),
        "executions": len(spans),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("store_url")
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds at most")
    parser.add_argument(
        "--start-at",
        type=float,
        help="one node of several (see run.py --nodes): warm up, then at this epoch time run"
        " --count executions with --in-flight at once and report their first start and last"
        " stop (one size only)",
    )
    parser.add_argument(
        "--count-statements",
        action="store_true",
        help="instead of timing, count the SQL statements of --count executions (SQLite)",
    )
    args = parser.parse_args()
    side = Side(args.store_url, Deadline(args.budget))
    side.engine.start()
    results: dict[str, Any] = {}
    try:
        for steps in (int(size) for size in args.sizes.split(",")):
            if args.count_statements:
                results[str(steps)] = count_statements(side, steps, args.count)
                continue
            if args.start_at is not None:
                results[str(steps)] = node_span(side, steps, args)
                continue
            side.committed.clear()
            figures = measure(
                side.runner(steps, f"r{steps}"),
                steps=steps,
                count=args.count,
                in_flight=args.in_flight,
                warmup=args.warmup,
            )
            one_at_a_time = [side.committed[index] for index in range(args.count)]
            figures["committed_p50_ms"] = statistics.median(one_at_a_time)
            figures["committed_p99_ms"] = percentile(one_at_a_time, 0.99)
            results[str(steps)] = figures
    finally:
        side.engine.stop()
        side.store.close()
    emit({"system": "dirigent", "store": args.store_url.split(":", 1)[0], "sizes": results})


if __name__ == "__main__":
    main()
