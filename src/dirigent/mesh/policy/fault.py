"""Fault injection: delay or abort a share of requests, to test a caller's resilience.

As Istio's ``HTTPFaultInjection``: a ``delay`` holds ``percent`` % of
requests for a fixed time before they go on; an ``abort`` answers
``percent`` % of requests with a status at once, without calling the
upstream. Both may apply to the same request (delayed, then aborted), and
each has its own draw, so their percentages are independent.

This module must never sleep or draw randomness: it returns a
:class:`FaultPlan` from the draws it is given and the shell carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from dirigent.mesh.policy.balance import Draw


@dataclass(frozen=True, slots=True)
class Delay:
    seconds: float
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Abort:
    status: int
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Fault:
    delay: Delay | None = None
    abort: Abort | None = None


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do to one request: wait ``delay`` seconds, then answer ``abort`` if set."""

    delay: float = 0.0
    abort: int | None = None


NO_FAULT = FaultPlan()


def plan(fault: Fault | None, draw: Draw) -> FaultPlan:
    """Decide the faults for one request; draws are taken only for faults that exist."""
    if fault is None:
        return NO_FAULT
    delay = 0.0
    if fault.delay is not None and _hit(fault.delay.percent, draw):
        delay = fault.delay.seconds
    abort = None
    if fault.abort is not None and _hit(fault.abort.percent, draw):
        abort = fault.abort.status
    if delay == 0.0 and abort is None:
        return NO_FAULT
    return FaultPlan(delay, abort)


def _hit(percent: float, draw: Draw) -> bool:
    # A draw is taken even at 0 % and 100 % so the sequence of draws a request
    # consumes does not depend on the configured percentages.
    return draw() * 100 < percent
