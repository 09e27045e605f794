"""Weighted traffic splitting between the subsets (versions) of a service.

A route sends each request to one of its destinations with probability
weight / total, as Istio's weighted ``route`` destinations do; a 90/10 canary
is ``(Destination("payments", "v1", 90), Destination("payments", "v2", 10))``.

This module must never draw randomness itself: the caller passes one uniform
draw in [0, 1) per request.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Destination:
    """A service, optionally narrowed to one subset, with its share of the traffic."""

    service: str
    subset: str | None = None
    weight: int = 100


@dataclass(frozen=True, slots=True)
class Split:
    """Destinations with their cumulative weights, ready for one bisect per request."""

    destinations: tuple[Destination, ...]
    cumulative: tuple[int, ...] = field(repr=False)

    @classmethod
    def of(cls, destinations: Sequence[Destination]) -> Split:
        if not destinations:
            raise ValueError("a split needs at least one destination")
        if any(d.weight < 0 for d in destinations):
            raise ValueError("weights must not be negative")
        cumulative = tuple(itertools.accumulate(d.weight for d in destinations))
        if cumulative[-1] <= 0:
            raise ValueError("at least one weight must be positive")
        return cls(tuple(destinations), cumulative)

    @property
    def total(self) -> int:
        return self.cumulative[-1]

    def choose(self, draw: float) -> Destination:
        """The destination a uniform ``draw`` in [0, 1) lands on."""
        # bisect_right skips zero-weight destinations: their cumulative value
        # equals their predecessor's, so no point of [0, total) maps to them.
        at = bisect.bisect_right(self.cumulative, draw * self.total)
        return self.destinations[min(at, len(self.destinations) - 1)]
