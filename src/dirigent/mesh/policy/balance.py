"""Load balancing: pick one endpoint of a service for a request.

Three algorithms, as Envoy and Istio name them:

- **round robin**: endpoints in turn; the cursor is the caller's state.
- **least request** with the power of two choices: draw two endpoints at
  random and take the one with fewer active requests, which avoids the herd
  that "always the least loaded" causes when many callers see the same figures.
- **ring hash** (consistent hashing on a header): each endpoint owns many
  points on a 64-bit ring; a key goes to the first point at or after its hash,
  so adding or removing one endpoint moves only about 1/n of the keys.

This module must never draw randomness or read a clock itself: random draws
come in as ``Draw`` callables returning a float in [0, 1). Hashes use
BLAKE2b, never Python's ``hash``, which changes from one process to the next.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

#: a source of uniform random floats in [0, 1), e.g. ``random.Random().random``
Draw = Callable[[], float]

#: points each endpoint places on the ring; Envoy's minimum ring size is 1024
#: in total, and 128 points each keeps the spread within a few percent for small n
DEFAULT_POINTS_PER_ENDPOINT = 128


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready replica of a service, as the runtime reports it."""

    host: str
    port: int
    #: labels such as ``version=v2`` that subsets select on
    labels: frozenset[tuple[str, str]] = frozenset()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def has_labels(self, wanted: Mapping[str, str]) -> bool:
        return all((key, value) in self.labels for key, value in wanted.items())


class Algorithm(Enum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"
    RING_HASH = "RING_HASH"


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """A destination's load-balancing setting; ``hash_header`` only for RING_HASH."""

    algorithm: Algorithm = Algorithm.ROUND_ROBIN
    hash_header: str | None = None


def round_robin(endpoints: Sequence[Endpoint], cursor: int) -> tuple[Endpoint, int]:
    """The endpoint at ``cursor`` and the next cursor; ``endpoints`` must not be empty."""
    if not endpoints:
        raise ValueError("round_robin needs at least one endpoint")
    index = cursor % len(endpoints)
    # The cursor is reduced so it never grows without bound in a long-lived proxy.
    return endpoints[index], (index + 1) % len(endpoints)


def least_request(
    endpoints: Sequence[Endpoint], active: Mapping[Endpoint, int], draw: Draw
) -> Endpoint:
    """Power of two choices: of two distinct random endpoints, the less busy one.

    Ties go to the first draw, so with equal load the choice stays uniform.
    """
    if not endpoints:
        raise ValueError("least_request needs at least one endpoint")
    count = len(endpoints)
    if count == 1:
        return endpoints[0]
    first = _index(draw(), count)
    # Draw the second from the other count - 1 endpoints so the two are distinct.
    second = _index(draw(), count - 1)
    if second >= first:
        second += 1
    a, b = endpoints[first], endpoints[second]
    return b if active.get(b, 0) < active.get(a, 0) else a


def _index(value: float, count: int) -> int:
    # min() guards a draw of exactly 1.0 from a sloppy source.
    return min(int(value * count), count - 1)


def hash_key(key: str) -> int:
    """A stable 64-bit hash of ``key``, the same in every process and run."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class HashRing:
    """A consistent-hash ring over a fixed set of endpoints; rebuild it when they change."""

    endpoints: tuple[Endpoint, ...]
    #: sorted hash points, and for each the index of the endpoint that owns it
    points: tuple[int, ...] = field(repr=False)
    owners: tuple[int, ...] = field(repr=False)

    @classmethod
    def build(
        cls, endpoints: Sequence[Endpoint], points_per_endpoint: int = DEFAULT_POINTS_PER_ENDPOINT
    ) -> HashRing:
        if points_per_endpoint < 1:
            raise ValueError("points_per_endpoint must be at least 1")
        # Points are placed by the endpoint's address, not its position in the
        # list, so an endpoint keeps its keys whatever order the runtime lists them in.
        placed = sorted(
            (hash_key(f"{endpoint.address}#{i}"), index)
            for index, endpoint in enumerate(endpoints)
            for i in range(points_per_endpoint)
        )
        return cls(
            endpoints=tuple(endpoints),
            points=tuple(point for point, _ in placed),
            owners=tuple(owner for _, owner in placed),
        )

    def pick(self, key: str) -> Endpoint:
        """The endpoint that owns ``key``: the first ring point at or after its hash."""
        if not self.points:
            raise ValueError("the ring has no endpoints")
        at = bisect.bisect_left(self.points, hash_key(key))
        if at == len(self.points):
            at = 0  # past the last point the ring wraps around
        return self.endpoints[self.owners[at]]
