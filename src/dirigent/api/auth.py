"""Who may do what: principals, their roles, and the role each action needs.

A principal holds an access key pair (for the Step Functions protocol, signed
with SigV4) and a bearer token (for REST), and one role. Roles are ordered:
``viewer`` reads, ``operator`` also runs executions and answers tasks,
``admin`` also changes the catalog. Every action is listed with the least
role it needs; an action missing from the table needs ``admin``, so a new
action is closed until someone decides otherwise.

This module must never read files, the environment or a clock: the
composition root loads principals (see :mod:`dirigent.api.keyfile`) and hands
them over, together with a ``refresh`` hook that may offer a newer list when a
key or token is not found (keys added while the server runs).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    access_key_id: str
    secret_access_key: str
    token: str

    def may(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)


_VIEWER = (
    "DescribeStateMachine DescribeStateMachineForExecution ListStateMachines "
    "ListStateMachineVersions DescribeStateMachineAlias ListStateMachineAliases "
    "DescribeExecution ListExecutions GetExecutionHistory DescribeActivity ListActivities "
    "ListTagsForResource DescribeMapRun ListMapRuns ValidateStateMachineDefinition"
)
_OPERATOR = (
    "StartExecution StartSyncExecution StopExecution RedriveExecution GetActivityTask "
    "SendTaskSuccess SendTaskFailure SendTaskHeartbeat TestState"
)

#: the least role each Step Functions action needs; absent means admin
ACTION_ROLES: dict[str, Role] = {
    **dict.fromkeys(_VIEWER.split(), "viewer"),
    **dict.fromkeys(_OPERATOR.split(), "operator"),
}


def role_for(action: str) -> Role:
    return ACTION_ROLES.get(action, "admin")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


#: offers the current principals when a lookup misses, or ``None`` to keep the known ones
Refresh = Callable[[], "Iterable[Principal] | None"]


def _no_refresh() -> None:
    return None


class Principals:
    """The principals the server knows, looked up by access key id or by token."""

    def __init__(self, principals: Iterable[Principal], refresh: Refresh = _no_refresh) -> None:
        self._refresh = refresh
        self._index = self._build(principals)

    @staticmethod
    def _build(
        principals: Iterable[Principal],
    ) -> tuple[dict[str, Principal], dict[bytes, Principal]]:
        by_key: dict[str, Principal] = {}
        by_token: dict[bytes, Principal] = {}
        for principal in principals:
            by_key[principal.access_key_id] = principal
            # Keyed by digest so a lookup never compares the secret token itself
            # byte by byte (a timing oracle); the digest reveals nothing usable.
            by_token[_digest(principal.token)] = principal
        return by_key, by_token

    def _refreshed(self) -> bool:
        fresh = self._refresh()
        if fresh is None:
            return False
        # One assignment: a lookup on another thread sees the old index or the
        # new one, never half of each.
        self._index = self._build(fresh)
        return True

    def by_access_key(self, access_key_id: str) -> Principal | None:
        principal = self._index[0].get(access_key_id)
        if principal is None and self._refreshed():
            principal = self._index[0].get(access_key_id)
        return principal

    def secret_for(self, access_key_id: str) -> str | None:
        principal = self.by_access_key(access_key_id)
        return principal.secret_access_key if principal else None

    def by_token(self, token: str) -> Principal | None:
        digest = _digest(token)
        principal = self._index[1].get(digest)
        if principal is None and self._refreshed():
            principal = self._index[1].get(digest)
        if principal is not None and hmac.compare_digest(principal.token, token):
            return principal
        return None

    def __len__(self) -> int:
        return len(self._index[0])
