"""Per-destination counters the outbound proxy updates in place, request by request.

The pure cores (:mod:`dirigent.mesh.policy.breaker`,
:mod:`dirigent.mesh.policy.outlier`) describe the breaker's load and
outlier detection as frozen values and functions that return the next one.
They stay the reference, and the unit tests replay random sequences of
events through both to show that these counters make the same decisions.
What the counters avoid is the cost of that form on the hot path: a frozen
``Load`` built twice per request, and outlier detection that copies its
state before every pick once any endpoint has failed.

- :class:`BreakerCounters` holds the four integers of a ``breaker.Load`` and
  applies each transition in place; a refused transition returns False where
  the pure function returns an ``Overflow`` (which limit is implied by the
  method called).
- :class:`OutlierTracker` keeps the pure ``OutlierState`` and calls the pure
  functions only when they can change it: ``readmit`` once the earliest
  ejection or earn-back is due, ``observe`` for a failure, or a success at an
  endpoint with a run of failures to clear. Everything in between is
  provably the identity, so it is skipped.

This module must never read a clock, draw randomness or do I/O: the proxy
hands it ``now``.
"""

from __future__ import annotations

import math

from dirigent.mesh.policy import breaker, outlier
from dirigent.mesh.policy.outcome import Outcome

#: how far before an earn-back is due the tracker asks the pure function
#: anyway: ``now - since >= interval`` and ``now >= since + interval`` may
#: round differently, and asking early only costs a call that changes nothing
_EARLY = 1e-6


class BreakerCounters:
    """A ``breaker.Load`` as mutable integers; each method mirrors the pure transition."""

    __slots__ = ("connections", "pending", "requests", "retries")

    def __init__(self) -> None:
        self.connections = 0
        self.pending = 0
        self.requests = 0
        self.retries = 0

    def load(self) -> breaker.Load:
        """The counters as the pure core's value (for tests and diagnostics)."""
        return breaker.Load(self.connections, self.pending, self.requests, self.retries)

    # Each admit is breaker.<same name> with the Load replaced in place; each
    # release clamps at zero as breaker._down does.

    def start_request(self, pool: breaker.ConnectionPool) -> bool:
        if self.requests >= pool.max_requests:
            return False
        self.requests += 1
        return True

    def finish_request(self) -> None:
        if self.requests > 0:
            self.requests -= 1

    def open_connection(self, pool: breaker.ConnectionPool) -> bool:
        if self.connections >= pool.max_connections:
            return False
        self.connections += 1
        return True

    def close_connection(self) -> None:
        if self.connections > 0:
            self.connections -= 1

    def queue(self, pool: breaker.ConnectionPool) -> bool:
        if self.pending >= pool.max_pending:
            return False
        self.pending += 1
        return True

    def dequeue(self) -> None:
        if self.pending > 0:
            self.pending -= 1

    def start_retry(self, pool: breaker.ConnectionPool) -> bool:
        if self.retries >= pool.max_retries:
            return False
        self.retries += 1
        return True

    def finish_retry(self) -> None:
        if self.retries > 0:
            self.retries -= 1


class OutlierTracker:
    """Outlier detection for one destination, asking the pure core only when it can matter."""

    __slots__ = ("_due", "_interval", "ejected", "running", "state")

    def __init__(self) -> None:
        self.state = outlier.OutlierState()
        #: addresses ejected now (what the balancer must avoid)
        self.ejected: frozenset[str] = frozenset()
        #: addresses with a run of failures that a success would reset
        self.running: frozenset[str] = frozenset()
        #: no readmission or earn-back can happen before this time
        self._due = math.inf
        #: the interval ``_due`` was computed with (a new policy may change it)
        self._interval = math.nan

    def readmit(self, policy: outlier.OutlierDetection, now: float) -> None:
        """:func:`outlier.readmit`, skipped while it would return the state unchanged."""
        # With no record at all, readmit is the identity whatever the policy.
        if now < self._due and (policy.interval == self._interval or not self.state.hosts):
            return
        self.state, _ = outlier.readmit(policy, self.state, now)
        self._refresh(policy)

    def observe(
        self,
        policy: outlier.OutlierDetection,
        address: str,
        outcome: Outcome,
        *,
        success: bool,
        now: float,
        pool_size: int,
    ) -> None:
        """:func:`outlier.observe`; ``success`` is ``not is_5xx(outcome)``, known to the caller.

        A success at an endpoint without a run of failures (ejected or not)
        leaves the pure state as it is, so it costs one set look-up.
        """
        if success and address not in self.running:
            return
        self.state, _ = outlier.observe(
            policy, self.state, address, outcome, now=now, pool_size=pool_size
        )
        self._refresh(policy)

    def _refresh(self, policy: outlier.OutlierDetection) -> None:
        hosts = self.state.hosts
        self.ejected = self.state.ejected()
        self.running = frozenset(
            a for a, r in hosts.items() if r.consecutive_5xx or r.consecutive_gateway
        )
        due = math.inf
        interval = policy.interval
        for record in hosts.values():
            if record.ejected_until is not None:
                due = min(due, record.ejected_until)
            elif record.ejections > 0 and interval > 0:
                due = min(due, record.since + interval - _EARLY * max(1.0, interval))
        self._due = due
        self._interval = interval
