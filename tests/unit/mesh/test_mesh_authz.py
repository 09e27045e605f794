"""Authorization: DENY first, then ALLOW, and every decision names its policy."""

from __future__ import annotations

import pytest

from dirigent.mesh.policy.authz import (
    DEFAULT_ALLOW,
    DEFAULT_DENY,
    Action,
    AuthorizationPolicy,
    Decision,
    Request,
    Rule,
    authorize,
    service_identity,
    wildcard_match,
)

ORDERS = service_identity("shop", "orders")
STRANGER = service_identity("shop", "stranger")

ALLOW_ORDERS = AuthorizationPolicy(
    "orders-may-charge",
    Action.ALLOW,
    (Rule(principals=(ORDERS,), methods=("POST",), paths=("/charge",)),),
)
DENY_ADMIN = AuthorizationPolicy("no-admin", Action.DENY, (Rule(paths=("/admin/*",)),))


def test_service_identity_is_a_spiffe_id_of_app_and_service() -> None:
    assert ORDERS == "spiffe://shop/service/orders"


def test_without_policies_everything_is_allowed_by_default() -> None:
    assert authorize([], Request(None, "GET", "/")) == Decision(True, DEFAULT_ALLOW)


def test_default_deny_refuses_what_no_policy_allows() -> None:
    decision = authorize([], Request(ORDERS, "GET", "/"), default_deny=True)
    assert decision == Decision(False, DEFAULT_DENY)


def test_an_allow_policy_admits_its_caller_and_names_itself() -> None:
    decision = authorize([ALLOW_ORDERS], Request(ORDERS, "POST", "/charge?id=1"))
    assert decision == Decision(True, "orders-may-charge")


def test_once_an_allow_policy_exists_anything_it_does_not_match_is_denied() -> None:
    assert authorize([ALLOW_ORDERS], Request(STRANGER, "POST", "/charge")) == Decision(
        False, DEFAULT_DENY
    )
    assert not authorize([ALLOW_ORDERS], Request(ORDERS, "GET", "/charge")).allowed


def test_deny_is_evaluated_before_allow() -> None:
    allow_all = AuthorizationPolicy("all", Action.ALLOW, (Rule(),))
    decision = authorize([allow_all, DENY_ADMIN], Request(ORDERS, "GET", "/admin/users"))
    assert decision == Decision(False, "no-admin")
    assert decision.reason == "RBAC: access denied by policy no-admin"


def test_a_deny_that_does_not_match_leaves_the_request_allowed() -> None:
    assert authorize([DENY_ADMIN], Request(ORDERS, "GET", "/charge")).allowed


def test_a_principal_rule_never_matches_a_caller_without_identity() -> None:
    anyone = AuthorizationPolicy("anyone", Action.ALLOW, (Rule(principals=("*",)),))
    assert not authorize([anyone], Request(None, "GET", "/")).allowed
    assert authorize([anyone], Request(ORDERS, "GET", "/")).allowed


def test_an_allow_policy_without_rules_allows_nothing() -> None:
    nothing = AuthorizationPolicy("allow-nothing", Action.ALLOW)
    assert authorize([nothing], Request(ORDERS, "GET", "/")) == Decision(False, DEFAULT_DENY)


def test_a_policy_matches_when_any_of_its_rules_does() -> None:
    two = AuthorizationPolicy(
        "two", Action.ALLOW, (Rule(methods=("GET",)), Rule(paths=("/health",)))
    )
    assert authorize([two], Request(None, "POST", "/health")).allowed
    assert not authorize([two], Request(None, "POST", "/charge")).allowed


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "anything", True),
        ("/api/*", "/api/v1", True),
        ("/api/*", "/apiv1", False),
        ("*/health", "/x/health", True),
        ("*/health", "/x/healthz", False),
        ("spiffe://shop/service/*", ORDERS, True),
        ("spiffe://other/service/*", ORDERS, False),
        ("/exact", "/exact", True),
        ("/exact", "/exact/", False),
    ],
)
def test_values_match_exactly_or_by_one_leading_or_trailing_star(
    pattern: str, value: str, expected: bool
) -> None:
    assert wildcard_match(pattern, value) is expected
