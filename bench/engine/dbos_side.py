"""DBOS Transact's side of the engine benchmark, run from the peers' virtual environment.

A DBOS workflow of N sequential ``@DBOS.step`` functions that do nothing, on
DBOS's system database: SQLite (a file; DBOS's own defaults, a rollback journal
with SQLite's default ``synchronous=FULL``) or PostgreSQL (its own database on
the same server as Dirigent's, ``synchronous_commit`` on). DBOS records each
step's output and the workflow's status in that database before going on.

An execution's end is the moment ``handle.get_result()`` returns in the
starting process; DBOS resolves it from its in-process future, without polling.

usage: bench/engine/.venv-peers/bin/python bench/engine/dbos_side.py DATABASE_URL ...
Prints one JSON line with the figures for each workflow size.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from dbos import DBOS, DBOSConfig
from measure import Deadline, emit, measure


@DBOS.step()
def noop(value: Any) -> Any:
    return value


@DBOS.workflow()
def sequence(steps: int, value: Any) -> Any:
    for _ in range(steps):
        value = noop(value)
    return value


def runner(steps: int, deadline: Deadline) -> Any:
    def run_one(_index: int) -> tuple[float, float]:
        started = time.time()
        handle = DBOS.start_workflow(sequence, steps, {"n": 1})
        deadline.left()
        handle.get_result()
        return started, time.time()

    return run_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("database_url")
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--budget", type=float, default=180.0, help="seconds at most")
    args = parser.parse_args()
    config: DBOSConfig = {
        "name": "dirigent-bench",
        "system_database_url": args.database_url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    deadline = Deadline(args.budget)
    results: dict[str, Any] = {}
    try:
        for steps in (int(size) for size in args.sizes.split(",")):
            results[str(steps)] = measure(
                runner(steps, deadline),
                steps=steps,
                count=args.count,
                in_flight=args.in_flight,
                warmup=args.warmup,
            )
    finally:
        DBOS.destroy()
    emit({"system": "dbos", "store": args.database_url.split(":", 1)[0], "sizes": results})


if __name__ == "__main__":
    main()
