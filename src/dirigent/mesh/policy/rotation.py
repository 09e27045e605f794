"""When to renew a short-lived identity certificate.

Istio's agent renews a workload certificate once half of its lifetime has
passed (``SECRET_GRACE_PERIOD_RATIO``), so a failed renewal has the other half
to be retried before anything expires. Times are seconds since the epoch,
read by the shell from the certificate and its wall clock.

This module must never read a clock or a certificate: it is handed numbers.
"""

from __future__ import annotations

#: the share of a certificate's lifetime after which it is renewed
DEFAULT_RENEW_FRACTION = 0.5


def renew_at(
    not_before: float, not_after: float, fraction: float = DEFAULT_RENEW_FRACTION
) -> float:
    """The moment a certificate valid from ``not_before`` to ``not_after`` should be renewed."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must lie strictly between 0 and 1")
    if not_after <= not_before:
        return not_before  # an empty lifetime: renew at once
    return not_before + (not_after - not_before) * fraction


def seconds_until_renewal(
    not_before: float, not_after: float, now: float, fraction: float = DEFAULT_RENEW_FRACTION
) -> float:
    """How long to wait from ``now`` before renewing; 0 when it is already due."""
    return max(renew_at(not_before, not_after, fraction) - now, 0.0)
