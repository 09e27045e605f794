"""The endpoint table: which replicas of each service are ready to take traffic.

The runtime calls :meth:`EndpointTable.update` whenever a replica's readiness
changes; listeners read :meth:`EndpointTable.get` on every request, so a
replica that stops being ready gets no new request after the update.

This module must never probe or discover anything itself: it holds what it is
told.
"""

from __future__ import annotations

from collections.abc import Iterable

from dirigent.mesh.policy.balance import Endpoint


class EndpointTable:
    """Service name -> its ready endpoints; replaced whole on each update."""

    def __init__(self) -> None:
        self._endpoints: dict[str, tuple[Endpoint, ...]] = {}
        #: bumped on every change, so caches (hash rings) know when to rebuild
        self.version = 0

    def update(self, service: str, endpoints: Iterable[Endpoint]) -> None:
        # Sorted so that the order the runtime reports replicas in does not
        # move round-robin positions or hash rings around.
        ready = tuple(sorted(set(endpoints), key=lambda e: (e.host, e.port)))
        if self._endpoints.get(service) != ready:
            self._endpoints[service] = ready
            self.version += 1

    def get(self, service: str) -> tuple[Endpoint, ...]:
        return self._endpoints.get(service, ())

    def services(self) -> list[str]:
        return sorted(self._endpoints)
