"""What became of one attempt to reach an upstream: a status code or a failure.

Retries, outlier detection and metrics all judge the same outcome, so it is
defined once here. This module must never do I/O; it only classifies.
"""

from __future__ import annotations

from enum import Enum


class Failure(Enum):
    """An attempt that produced no response at all."""

    #: the TCP connection could not be made (refused, unreachable)
    CONNECT_FAILURE = "connect-failure"
    #: the connection was reset or closed before a full response head arrived
    RESET = "reset"
    #: the per-try timeout ran out while waiting for the response head
    TIMEOUT = "timeout"


#: an HTTP status code, or the way an attempt failed before producing one
Outcome = int | Failure

#: the statuses Envoy and Istio call gateway errors
GATEWAY_STATUSES = frozenset({502, 503, 504})


def is_5xx(outcome: Outcome) -> bool:
    """A server error or no response: what Envoy's ``5xx`` condition covers."""
    return isinstance(outcome, Failure) or 500 <= outcome <= 599


def is_gateway_error(outcome: Outcome) -> bool:
    """502, 503, 504, or no response (which a proxy reports as one of those)."""
    return isinstance(outcome, Failure) or outcome in GATEWAY_STATUSES


def status_for(failure: Failure) -> int:
    """The status a proxy answers with when the last attempt failed this way."""
    return 504 if failure is Failure.TIMEOUT else 503
