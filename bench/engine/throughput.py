"""Steps per second and CPU per step of Dirigent's engine alone: a quick A/B tool.

The throughput phase of ``run.py``'s Dirigent side, with more executions and
no peers: N sequential Task states calling a no-op function, ``--count``
executions with ``--in-flight`` at once, on the store a URL names. Prints
steps per second, the process's CPU time per step and how many of the
worker's transactions carried them. To compare two versions of the engine on
one machine, run it alternately with ``PYTHONPATH=<exported src>`` and
without, several times each, and compare medians.

usage: .venv/bin/python bench/engine/throughput.py STORE_URL [--steps 3] [--count 1000]
"""

from __future__ import annotations

import argparse
import threading
import time

from dirigent_side import Side
from measure import Deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("store_url")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    side = Side(args.store_url, Deadline(300))
    side.engine.start()
    try:
        warm = side.runner(args.steps, "warm")
        for index in range(args.warmup):
            warm(index)
        run = side.runner(args.steps, "run")
        indexes = iter(range(args.count))
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    index = next(indexes, None)
                if index is None:
                    return
                run(index)

        stats = side.engine.worker.stats
        commits_before = stats.commits
        cpu_before, began = time.process_time(), time.time()
        clients = [threading.Thread(target=client) for _ in range(args.in_flight)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed, cpu = time.time() - began, time.process_time() - cpu_before
        steps = args.count * args.steps
        print(
            f"{args.steps} steps x {args.count}: {steps / elapsed:,.0f} steps/s, "
            f"{cpu / steps * 1e6:.0f} µs of CPU per step, "
            f"{stats.commits - commits_before} loop transactions"
        )
    finally:
        side.engine.stop()
        side.store.close()


if __name__ == "__main__":
    main()
