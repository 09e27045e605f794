"""What a replica needs in its environment to call other services through the mesh by name.

Each replica is started with ``HTTP_PROXY`` (and ``http_proxy``, which curl
and many libraries read instead) pointing at its own service's outbound
listener, and a ``<SERVICE>_URL`` per service of the application
(``PAYMENTS_URL=http://payments``), so ``http://payments/charge`` works from
any ordinary HTTP client and the mesh knows the caller from the listener it
used. ``NO_PROXY`` keeps the loopback direct, so a replica's calls to itself
and to local tools do not go through the mesh.

This module must never start or look up anything: the runtime hands it the
names and the listener's port, and applies what it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_NOT_IN_NAME = re.compile(r"[^A-Z0-9]")


def url_variable(service: str) -> str:
    """``payments`` -> ``PAYMENTS_URL``; ``order-history`` -> ``ORDER_HISTORY_URL``."""
    return _NOT_IN_NAME.sub("_", service.upper()) + "_URL"


def replica_environment(
    services: Iterable[str], outbound_host: str, outbound_port: int
) -> Mapping[str, str]:
    proxy = f"http://{outbound_host}:{outbound_port}"
    environment = {
        "HTTP_PROXY": proxy,
        "http_proxy": proxy,
        "NO_PROXY": "localhost,127.0.0.1,::1",
        "no_proxy": "localhost,127.0.0.1,::1",
    }
    for service in sorted(services):
        environment[url_variable(service)] = f"http://{service}"
    return environment
