"""What every request handler needs, wired once by the composition root.

Handlers reach the engine only through ``backend`` (:mod:`dirigent.api.backend`),
by action name, so the same handlers serve in the engine's process and in a
front process of their own.

This module must never create an engine, a store or credentials itself.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dirigent.api.auth import Principals
from dirigent.api.backend import Backend
from dirigent.engine.arns import Arns
from dirigent.sigv4 import SigningKey, memoised_signing_key


def _utc_now() -> datetime:
    return datetime.now(UTC)


def request_ids() -> Callable[[], str]:
    """Fresh UUID4-shaped request ids from a generator seeded once.

    A request id must be unique, not secret. ``uuid.uuid4`` reads
    ``os.urandom``, a system call that hands the GIL to another thread; on the
    event loop, getting it back can take a whole switch interval (5 ms).
    """
    generator = random.Random(secrets.randbits(128))
    return lambda: str(uuid.UUID(int=generator.getrandbits(128), version=4))


@dataclass
class ApiContext:
    backend: Backend
    principals: Principals
    #: names resources in REST paths (``/state-machines/{name}``) as the engine does
    arns: Arns
    now: Callable[[], datetime] = _utc_now
    #: derives SigV4 signing keys; memoised, since a key serves a whole day
    signing_keys: SigningKey = field(default_factory=memoised_signing_key)
    #: the ``x-amzn-RequestId`` of each Step Functions answer (event loop only)
    request_id: Callable[[], str] = field(default_factory=request_ids)
    #: set once the server begins to stop: live streams end (their clients
    #: resume elsewhere) instead of holding the stop up to its time limit
    closing: bool = False

    async def act(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        return await self.backend.act(action, request)

    def close(self) -> None:
        self.backend.close()
