"""The measurement every side of the engine benchmark shares (standard library only).

A side hands over one function, ``run_one(index) -> (started, stopped)``, that
starts one execution of its workflow and returns when the execution has
finished, with two wall-clock times (``time.time()``): just before the start
request, and the execution's stop. This module calls it one at a time for the
latency figures and from a fixed number of client threads for the throughput
figure, so every system is driven the same way.

It must never import a system under test: the peers' sides run it from their
own virtual environment.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Callable

RunOne = Callable[[int], tuple[float, float]]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the value at or below which ``fraction`` of them lie."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def sequential(run_one: RunOne, count: int) -> dict[str, float]:
    """``count`` executions one at a time (indices 0 to count - 1): p50 and p99
    end-to-end latency in ms."""
    latencies = []
    for index in range(count):
        started, stopped = run_one(index)
        latencies.append((stopped - started) * 1000)
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": statistics.fmean(latencies),
    }


def concurrent(run_one: RunOne, count: int, in_flight: int, steps: int) -> dict[str, float]:
    """``count`` executions, ``in_flight`` at a time: durable steps per second.

    Their indices follow the sequential pass's (count to 2 count - 1). The span
    runs from the first start request to the last execution's stop.
    """
    spans = concurrent_spans(run_one, count, in_flight)
    seconds = max(stop for _, stop in spans) - min(start for start, _ in spans)
    return {"steps_per_s": count * steps / seconds, "seconds": seconds}


def concurrent_spans(run_one: RunOne, count: int, in_flight: int) -> list[tuple[float, float]]:
    """Each of ``count`` executions' (start, stop), run ``in_flight`` at a time."""
    lock = threading.Lock()
    next_index = [count]
    spans: list[tuple[float, float]] = []
    failures: list[BaseException] = []

    def client() -> None:
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= 2 * count or failures:
                return
            try:
                span = run_one(index)
            except BaseException as exc:  # report it from the main thread
                failures.append(exc)
                return
            with lock:
                spans.append(span)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return spans


def measure(
    run_one: RunOne, *, steps: int, count: int, in_flight: int, warmup: int
) -> dict[str, float]:
    """Warm up, then the sequential and the concurrent measurement."""
    for index in range(warmup):
        run_one(-1 - index)
    figures = sequential(run_one, count)
    figures.update(concurrent(run_one, count, in_flight, steps))
    return figures


def emit(result: dict[str, object]) -> None:
    """Hand a side's figures to the runner: one JSON line on stdout, last."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


class Deadline:
    """The time a side may still take; runs past it fail rather than hang the bench."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the side ran past its time budget")
        return remaining
