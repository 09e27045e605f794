"""Authorization: may this caller make this request of this service?

As Istio's ``AuthorizationPolicy`` evaluates them:

1. if any DENY policy matches the request, it is denied;
2. otherwise, if there are no ALLOW policies, it is allowed, unless the
   default is deny (Istio's "allow-nothing" policy, here a flag);
3. otherwise it is allowed if any ALLOW policy matches, and denied if none does.

A policy matches when any of its rules does; a rule matches when each of its
given fields does: ``principals`` (the caller's identity,
``spiffe://<app>/service/<name>``), ``methods`` and ``paths``. Values may
use one ``*`` at the start or end, as in Istio (``/api/*``, ``*/health``,
``spiffe://shop/service/*``); a bare ``*`` matches anything that is present.
A rule with ``principals`` never matches a caller without an identity (a
plain-text request in PERMISSIVE mode). Every decision names the policy that
made it, so a 403 can say why.

This module must never do I/O or see certificates: the shell hands it the
identity it has already verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

#: the name a decision carries when no policy allowed a request and the default denied it
DEFAULT_DENY = "default-deny"
#: the name a decision carries when no policy applied and the default allowed it
DEFAULT_ALLOW = "default-allow"


def service_identity(app: str, service: str) -> str:
    """The SPIFFE ID the internal CA puts in a service's certificate."""
    return f"spiffe://{app}/service/{service}"


class Action(Enum):
    ALLOW = "ALLOW"
    DENY = "DENY"


@dataclass(frozen=True, slots=True)
class Rule:
    """Each non-empty field must match; an empty field is not checked."""

    principals: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    """A named policy; no rules matches nothing (an ALLOW of nothing denies everything)."""

    name: str
    action: Action
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """What authorization looks at: who calls, how and where (path without query)."""

    principal: str | None
    method: str
    path: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: the policy that decided, or DEFAULT_ALLOW / DEFAULT_DENY
    policy: str

    @property
    def reason(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        return f"RBAC: access {verdict} by policy {self.policy}"


def authorize(
    policies: Sequence[AuthorizationPolicy], request: Request, *, default_deny: bool = False
) -> Decision:
    """Evaluate ``policies`` for ``request``, DENY first."""
    for policy in policies:
        if policy.action is Action.DENY and _policy_matches(policy, request):
            return Decision(False, policy.name)
    allows = [policy for policy in policies if policy.action is Action.ALLOW]
    for policy in allows:
        if _policy_matches(policy, request):
            return Decision(True, policy.name)
    if allows or default_deny:
        return Decision(False, DEFAULT_DENY)
    return Decision(True, DEFAULT_ALLOW)


def _policy_matches(policy: AuthorizationPolicy, request: Request) -> bool:
    return any(_rule_matches(rule, request) for rule in policy.rules)


def _rule_matches(rule: Rule, request: Request) -> bool:
    if rule.principals and not _any(rule.principals, request.principal):
        return False
    if rule.methods and not _any(rule.methods, request.method):
        return False
    return not rule.paths or _any(rule.paths, request.path.split("?", 1)[0])


def _any(patterns: Sequence[str], value: str | None) -> bool:
    return value is not None and any(wildcard_match(p, value) for p in patterns)


def wildcard_match(pattern: str, value: str) -> bool:
    """Istio's value matching: exact, ``prefix*``, ``*suffix`` or ``*``."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern
