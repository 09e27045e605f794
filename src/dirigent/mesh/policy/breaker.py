"""Circuit breaking: connection, pending-request, request and retry limits.

Mirrors the ``connectionPool`` of Istio's DestinationRule, which Envoy
enforces as per-destination circuit breakers: at most ``max_connections``
upstream connections, ``max_pending`` requests queued waiting for one,
``max_requests`` requests in flight and ``max_retries`` retries in flight.
A request that would pass a limit is shed at once (the proxy answers 503 with
``x-envoy-overloaded``) instead of queueing without end; the breaker is
"open" while any limit is reached and closes by itself as work finishes.

The counters are a frozen :class:`Load`; every transition is a function that
returns the next one, or an :class:`Overflow` naming the limit that shed the
work. This module must never block, wait or count anything behind the
caller's back: the shell applies each transition it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Envoy's default for each limit when none is set
DEFAULT_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ConnectionPool:
    """Limits for one destination; ``max_requests_per_connection`` 0 means no limit."""

    max_connections: int = DEFAULT_LIMIT
    max_pending: int = DEFAULT_LIMIT
    max_requests: int = DEFAULT_LIMIT
    max_retries: int = DEFAULT_LIMIT
    max_requests_per_connection: int = 0


class Limit(Enum):
    CONNECTIONS = "max_connections"
    PENDING = "max_pending"
    REQUESTS = "max_requests"
    RETRIES = "max_retries"


@dataclass(frozen=True, slots=True)
class Overflow:
    """Work that was shed, and the limit that shed it."""

    limit: Limit


@dataclass(frozen=True, slots=True)
class Load:
    """What is in use now at one destination.

    Transitions build the next Load positionally rather than with
    ``dataclasses.replace``: the proxy makes two per request, and ``replace``
    costs several times a plain construction.
    """

    connections: int = 0
    pending: int = 0
    requests: int = 0
    retries: int = 0


def start_request(pool: ConnectionPool, load: Load) -> Load | Overflow:
    """Admit one request into flight, or shed it at ``max_requests``."""
    if load.requests >= pool.max_requests:
        return Overflow(Limit.REQUESTS)
    return Load(load.connections, load.pending, load.requests + 1, load.retries)


def finish_request(load: Load) -> Load:
    return Load(load.connections, load.pending, _down(load.requests), load.retries)


def open_connection(pool: ConnectionPool, load: Load) -> Load | Overflow:
    """Open a new upstream connection, or refuse at ``max_connections``.

    A refused caller may still :func:`queue` for a connection another request
    gives back.
    """
    if load.connections >= pool.max_connections:
        return Overflow(Limit.CONNECTIONS)
    return Load(load.connections + 1, load.pending, load.requests, load.retries)


def close_connection(load: Load) -> Load:
    return Load(_down(load.connections), load.pending, load.requests, load.retries)


def queue(pool: ConnectionPool, load: Load) -> Load | Overflow:
    """Wait for a connection, or shed at ``max_pending``."""
    if load.pending >= pool.max_pending:
        return Overflow(Limit.PENDING)
    return Load(load.connections, load.pending + 1, load.requests, load.retries)


def dequeue(load: Load) -> Load:
    """A queued request got its connection or gave up waiting."""
    return Load(load.connections, _down(load.pending), load.requests, load.retries)


def start_retry(pool: ConnectionPool, load: Load) -> Load | Overflow:
    """Admit one retry, or refuse at ``max_retries`` (the request then fails as it stands)."""
    if load.retries >= pool.max_retries:
        return Overflow(Limit.RETRIES)
    return Load(load.connections, load.pending, load.requests, load.retries + 1)


def finish_retry(load: Load) -> Load:
    return Load(load.connections, load.pending, load.requests, _down(load.retries))


def connection_spent(pool: ConnectionPool, requests_served: int) -> bool:
    """Whether a connection that served this many requests must be closed, not reused."""
    return 0 < pool.max_requests_per_connection <= requests_served


def is_open(pool: ConnectionPool, load: Load) -> bool:
    """Whether new requests are being shed right now (the breaker is tripped)."""
    if load.requests >= pool.max_requests:
        return True
    # With every connection busy, a new request can only queue; once the queue
    # is full as well, it is shed.
    return load.connections >= pool.max_connections and load.pending >= pool.max_pending


def _down(count: int) -> int:
    # A finish without a start is a shell bug; clamping keeps one bug from
    # turning into a breaker that never trips again.
    return count - 1 if count > 0 else 0
