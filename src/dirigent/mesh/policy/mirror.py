"""Traffic mirroring: a copy of a share of a route's requests sent to another destination.

As Istio's ``mirror`` and ``mirrorPercentage`` (Envoy's request mirror
policy): the copy goes to ``service`` (narrowed to ``subset`` if given), its
answer is read and thrown away, and nothing that happens to it (a slow or
failing mirror, a full connection pool) may delay or fail the primary
request. Envoy marks the copy by suffixing the Host with ``-shadow``.

This module must never draw randomness: the shell passes a draw in, and only
asks for one when the share is below 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

#: appended to the Host of a mirrored request, as Envoy does
SHADOW_SUFFIX = "-shadow"


@dataclass(frozen=True, slots=True)
class Mirror:
    service: str
    subset: str | None = None
    #: the share of requests copied, 0-100 (Istio's mirrorPercentage; 100 when absent)
    percent: float = 100.0

    @property
    def always(self) -> bool:
        """Every request is copied: no draw is needed."""
        return self.percent >= 100.0


def mirrored(mirror: Mirror, draw: float) -> bool:
    """Whether the request with this uniform ``draw`` in [0, 1) is copied."""
    return draw * 100 < mirror.percent
