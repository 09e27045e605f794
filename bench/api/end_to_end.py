"""Is the API the bottleneck of the engine's own throughput? Workflows started both ways.

A three-step workflow (three Task states calling a no-op function) is started
for ``--seconds`` by 32 clients, once through the server's Step Functions API
(raw keep-alive HTTP, pre-signed requests), once on an in-process engine
with the same function, and once more on an in-process engine whose store
publishes to the dashboard's live feed as the server's does (the like-for-like
row); each time the run then waits until every started execution has
finished. The figure is executions finished per second over the whole run,
first start to last finish: if the API were the bottleneck, the API row would finish
fewer. Both use SQLite in a temporary directory. Bounded in time; loopback only.

usage: .venv/bin/python bench/api/end_to_end.py [--seconds 8] [--clients 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from run import BusyShare, raw_mode, run_clients, server_loop  # noqa: E402
from tests.integration.api.conftest import Server, start_server, stop_server  # noqa: E402
from tests.integration.api.functions import nothing  # noqa: E402

from dirigent.api.feed import Feed, FeedStore  # noqa: E402
from dirigent.api.keyfile import new_principal, write_principals  # noqa: E402
from dirigent.engine import Engine, FunctionRegistry  # noqa: E402
from dirigent.store import open_store  # noqa: E402
from dirigent.store.port import Store  # noqa: E402

TASK = "arn:aws:lambda:us-east-1:123456789012:function:Nothing"
DEFINITION = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Task", "Resource": TASK, "Next": "B"},
        "B": {"Type": "Task", "Resource": TASK, "Next": "C"},
        "C": {"Type": "Task", "Resource": TASK, "End": True},
    },
}


def _running(store: Store) -> int:
    with store.transaction() as tx:
        return len(tx.list_executions(machine_arn=None, status="RUNNING", before=None,
                                      limit=100_000))  # fmt: skip


def _finished(store: Store) -> tuple[int, float, float]:
    """Executions that succeeded, the first one's start and the last one's stop."""
    with store.transaction() as tx:
        rows = tx.list_executions(machine_arn=None, status="SUCCEEDED", before=None,
                                  limit=100_000)  # fmt: skip
    if not rows:
        return 0, 0.0, 0.0
    return len(rows), min(r.started_at for r in rows), max(r.stopped_at or 0.0 for r in rows)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain(
    store: Store, label: str, pid: int, cpu_before: float, busy: Callable[[], float]
) -> None:
    """Wait for the last execution, then print the rate from the first start to
    the last stop: the clients' set-up (the API's clients sign 1,000 requests
    each beforehand) is not in it. ``busy``: the share of the worker loop's time
    spent working while the clients ran (near 1: the engine set the pace)."""
    loop_busy = busy()
    deadline = time.monotonic() + 120
    while _running(store) and time.monotonic() < deadline:
        time.sleep(0.2)
    count, first, last = _finished(store)
    cpu = (_cpu_seconds(pid) - cpu_before) / max(count, 1) * 1000
    print(f"{label:17s} {count / (last - first):8.0f} executions/s finished "
          f"({count} executions, 3 steps each); {cpu:.2f} ms of CPU each in the "
          f"engine's process; worker loop busy {loop_busy:.1%} while clients ran",
          flush=True)  # fmt: skip


def through_api(data_dir: Path, args: argparse.Namespace) -> None:
    admin = new_principal("admin", "admin")
    write_principals(data_dir, [admin])
    process, url = start_server(data_dir)
    server = Server(url, data_dir, process, admin, admin, admin)
    try:
        machine = server.client().create_state_machine(
            name="e2e", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
        )["stateMachineArn"]
        cpu_before = _cpu_seconds(process.pid)
        busy = BusyShare(lambda: server_loop(server))
        run_clients(args.clients, args.seconds, raw_mode(server, machine, "e2e"), busy.start)
        store = open_store(f"sqlite:///{data_dir / 'dirigent.db'}")
        _drain(store, "API", process.pid, cpu_before, busy)
        store.close()
    finally:
        stop_server(process)


def in_process(data_dir: Path, args: argparse.Namespace, *, feed: bool = False) -> None:
    """``feed``: the store wrapped as the server wraps it, publishing every
    committed event to the dashboard's live feed (the like-for-like row)."""
    store: Store = open_store(f"sqlite:///{data_dir / 'direct.db'}")
    if feed:
        store = FeedStore(store, Feed())  # type: ignore[assignment]
    engine = Engine(store, functions=FunctionRegistry({"Nothing": nothing}))
    engine.start()
    try:
        machine = engine.catalog.create_state_machine(
            {"name": "e2e", "definition": json.dumps(DEFINITION), "roleArn": "r"}
        )["stateMachineArn"]

        def make(index: int):  # type: ignore[no-untyped-def]
            def call(n: int) -> None:
                if n < 1_000:
                    engine.executions.start_execution(
                        {"stateMachineArn": machine, "name": f"d{index}-{n}"}
                    )

            return call

        cpu_before = _cpu_seconds(os.getpid())
        stats = engine.worker.stats
        busy = BusyShare(lambda: (stats.busy_seconds, stats.idle_seconds))
        run_clients(args.clients, args.seconds, make, busy.start)
        _drain(store, "in-process" + (" + feed" if feed else ""), os.getpid(), cpu_before, busy)
    finally:
        engine.stop()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with (
        tempfile.TemporaryDirectory() as first,
        tempfile.TemporaryDirectory() as second,
        tempfile.TemporaryDirectory() as third,
    ):
        through_api(Path(first), args)
        in_process(Path(second), args)
        in_process(Path(third), args, feed=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
