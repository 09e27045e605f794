"""Retries: whether to try again, how long to wait first, and how long each try may take.

As Istio's ``HTTPRetry`` and Envoy's retry policy define them:

- ``attempts`` is the number of *retries* (Istio's meaning): 2 allows three
  tries in all, 0 turns retries off;
- ``retry_on`` names the outcomes worth another try: ``5xx`` (any 5xx or no
  response), ``gateway-error`` (502, 503, 504 or no response),
  ``connect-failure``, ``reset`` (the connection dropped or the try timed out
  before a response head), ``retriable-4xx`` (409) and
  ``retriable-status-codes`` (the codes in ``retriable_statuses``);
- before retry *n* the proxy waits a fully jittered exponential backoff: a
  uniform draw from [0, (2**n - 1) * ``base_interval``], capped at
  ``max_interval`` (Envoy's algorithm; defaults 25 ms and 10 * that);
- each try is cut at ``per_try_timeout`` and never runs past the route's
  overall deadline;
- a **retry budget** keeps retries from multiplying an overload: at most
  ``percent`` % of the active requests may be retries at once, but never
  fewer than ``min_concurrency`` (Envoy's ``retry_budget``, defaults 20 % and 3).

This module must never sleep, read a clock or draw randomness: ``now``,
deadlines and draws are arguments, and a :class:`Decision` says what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from dirigent.mesh.policy.balance import Draw
from dirigent.mesh.policy.outcome import Failure, Outcome, is_5xx, is_gateway_error


class RetryOn(Enum):
    FIVE_XX = "5xx"
    GATEWAY_ERROR = "gateway-error"
    CONNECT_FAILURE = "connect-failure"
    RESET = "reset"
    RETRIABLE_4XX = "retriable-4xx"
    RETRIABLE_STATUS_CODES = "retriable-status-codes"


#: Istio's default conditions, minus those that exist only for HTTP/2 and gRPC
DEFAULT_RETRY_ON = frozenset({RetryOn.CONNECT_FAILURE, RetryOn.RETRIABLE_STATUS_CODES})


@dataclass(frozen=True, slots=True)
class RetryBudget:
    percent: float = 20.0
    min_concurrency: int = 3


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One route's retries; Istio's default is two retries on connect failures and 503."""

    attempts: int = 2
    per_try_timeout: float | None = None
    retry_on: frozenset[RetryOn] = DEFAULT_RETRY_ON
    retriable_statuses: frozenset[int] = frozenset({503})
    base_interval: float = 0.025
    max_interval: float | None = None

    @property
    def backoff_cap(self) -> float:
        return self.max_interval if self.max_interval is not None else 10 * self.base_interval


NO_RETRIES = RetryPolicy(attempts=0)


def retriable(policy: RetryPolicy, outcome: Outcome) -> bool:
    """Whether ``outcome`` meets one of the policy's ``retry_on`` conditions."""
    conditions = policy.retry_on
    if RetryOn.FIVE_XX in conditions and is_5xx(outcome):
        return True
    if RetryOn.GATEWAY_ERROR in conditions and is_gateway_error(outcome):
        return True
    if isinstance(outcome, Failure):
        if outcome is Failure.CONNECT_FAILURE:
            return RetryOn.CONNECT_FAILURE in conditions or RetryOn.RESET in conditions
        return RetryOn.RESET in conditions
    if RetryOn.RETRIABLE_4XX in conditions and outcome == 409:
        return True
    return RetryOn.RETRIABLE_STATUS_CODES in conditions and outcome in policy.retriable_statuses


def backoff(policy: RetryPolicy, retry: int, draw: Draw) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
    if retry < 1:
        raise ValueError("retries are numbered from 1")
    # Past 2**60 the ceiling is far beyond any cap; stop the float from overflowing.
    ceiling = ((1 << min(retry, 60)) - 1) * policy.base_interval
    return draw() * min(ceiling, policy.backoff_cap)


def within_budget(budget: RetryBudget, active_requests: int, active_retries: int) -> bool:
    """Whether one more retry may start while ``active_retries`` are already running."""
    allowed = max(budget.min_concurrency, math.floor(budget.percent / 100 * active_requests))
    return active_retries < allowed


def try_timeout(policy: RetryPolicy, now: float, deadline: float | None) -> float | None:
    """How long the next try may take: the per-try timeout, cut to the time left."""
    left = None if deadline is None else max(deadline - now, 0.0)
    if policy.per_try_timeout is None:
        return left
    if left is None:
        return policy.per_try_timeout
    return min(policy.per_try_timeout, left)


class GiveUp(Enum):
    """Why a failed outcome is final."""

    NOT_RETRIABLE = "not-retriable"
    ATTEMPTS_EXHAUSTED = "attempts-exhausted"
    BUDGET_EXHAUSTED = "budget-exhausted"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds; this will be retry number ``retry``."""

    retry: int
    delay: float


Decision = Retry | GiveUp


def decide(
    policy: RetryPolicy,
    outcome: Outcome,
    retries_done: int,
    *,
    now: float,
    deadline: float | None,
    budget_ok: bool,
    draw: Draw,
) -> Decision:
    """What to do after a try ended with ``outcome``.

    ``budget_ok`` is the verdict of :func:`within_budget` (and of the breaker's
    retry limit), which only the shell can count. A retry whose backoff would
    end at or past the deadline is not started: it could only time out.
    """
    if not retriable(policy, outcome):
        return GiveUp.NOT_RETRIABLE
    if retries_done >= policy.attempts:
        return GiveUp.ATTEMPTS_EXHAUSTED
    if not budget_ok:
        return GiveUp.BUDGET_EXHAUSTED
    delay = backoff(policy, retries_done + 1, draw)
    if deadline is not None and now + delay >= deadline:
        return GiveUp.DEADLINE
    return Retry(retries_done + 1, delay)
