"""A service's live load from the mesh's counters: request rate, p95 latency, in-flight.

The autoscaler asks once a second; each answer compares the counters now with
the ones seen at the previous question, so the figures describe the last
interval, not the process's whole life. Pure: the caller hands in the counters
and the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dirigent.mesh.telemetry import BUCKETS


@dataclass(frozen=True, slots=True)
class Counters:
    """One service's totals at one moment, summed over every series reporting it."""

    at: float
    requests: int
    #: per latency bucket (the last is +Inf), not cumulative
    buckets: tuple[int, ...]
    in_flight: int


@dataclass(frozen=True, slots=True)
class Load:
    rps: float | None
    p95_latency: float | None
    inflight: float

    def as_metrics(self) -> dict[str, float | None]:
        return {"rps": self.rps, "p95_latency": self.p95_latency, "inflight": self.inflight}


def measure(previous: Counters | None, current: Counters) -> Load:
    """The load over the interval between two readings (rates need two)."""
    if previous is None or current.at <= previous.at:
        return Load(None, None, float(current.in_flight))
    elapsed = current.at - previous.at
    served = current.requests - previous.requests
    before = (
        previous.buckets
        if len(previous.buckets) == len(current.buckets)
        else (0,) * len(current.buckets)
    )
    delta = [now - then for now, then in zip(current.buckets, before, strict=True)]
    return Load(served / elapsed, _percentile(delta, 0.95), float(current.in_flight))


def _percentile(buckets: Sequence[int], fraction: float) -> float | None:
    """The upper bound of the bucket holding the given fraction of requests."""
    total = sum(buckets)
    if total == 0:
        return None
    wanted = fraction * total
    running = 0
    for index, count in enumerate(buckets):
        running += count
        if running >= wanted:
            # The last bucket has no upper bound; report the largest finite one.
            return BUCKETS[min(index, len(BUCKETS) - 1)]
    return BUCKETS[-1]
