"""The manifest's mesh section loads into a MeshPolicy, and each mistake is located."""

from __future__ import annotations

import textwrap

import pytest

from dirigent.manifest import InvalidManifest, parse_manifest
from dirigent.mesh.config import MeshPolicy, MtlsMode
from dirigent.mesh.policy.authz import Action, Request, authorize
from dirigent.mesh.policy.balance import Algorithm
from dirigent.mesh.policy.fault import Abort, Delay
from dirigent.mesh.policy.retry import RetryOn
from dirigent.mesh.policy.routing import RequestHead, first_match
from dirigent.mesh.section import MESH_SECTIONS, unknown_services

SHOP = textwrap.dedent(
    """\
    app: shop
    services:
      payments: {command: python -m payments}
      orders: {command: python -m orders}
    mesh:
      mtls: {mode: STRICT, services: {orders: PERMISSIVE}}
      destinations:
        payments:
          load_balancer: {consistent_hash: {header: X-User}}
          connection_pool: {max_connections: 10, max_pending: 2, max_requests: 20, max_retries: 3}
          outlier_detection: {consecutive_5xx: 3, base_ejection_time: 5, max_ejection_percent: 50}
          retry_budget: {percent: 25, min_concurrency: 2}
          subsets: {v1: {version: v1}, v2: {version: v2}}
      routes:
        payments:
          timeout: 2
          retries:
            attempts: 3
            per_try_timeout: 0.5
            retry_on: 5xx,reset
            backoff: {base_interval: 0.01, max_interval: 0.1}
          split: {v1: 90, v2: 10}
          rules:
            - name: canary
              match:
                - headers: {x-canary: {present: true}}
              split: {v2: 100}
              headers: {request: {set: {x-route: canary}, remove: [x-debug]}}
            - name: charges
              match: {path: {prefix: /charge}, method: POST}
              fault: {delay: {fixed: 0.2, percent: 10}, abort: {status: 503, percent: 1}}
              rate_limit: {max_tokens: 100, fill_interval: 0.5}
              retries: {attempts: 0}
      authorization:
        payments:
          default: DENY
          policies:
            - name: orders-may-charge
              action: ALLOW
              rules: [{from: [orders], methods: [POST], paths: [/charge, /refund/*]}]
            - name: no-admin
              action: DENY
              rules: [{paths: [/admin/*]}]
    """
)


def load(text: str) -> MeshPolicy:
    policy = parse_manifest(text, sections=MESH_SECTIONS).extensions["mesh"]
    assert isinstance(policy, MeshPolicy)
    return policy


def problems(text: str) -> list[str]:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(text, sections=MESH_SECTIONS)
    return [str(problem) for problem in caught.value.problems]


def with_mesh(mesh: str) -> str:
    return "app: shop\nmesh:\n" + textwrap.indent(textwrap.dedent(mesh), "  ")


def test_a_full_mesh_section_loads_every_policy() -> None:
    policy = load(SHOP)
    assert policy.mtls_mode("payments") is MtlsMode.STRICT
    assert policy.mtls_mode("orders") is MtlsMode.PERMISSIVE
    destination = policy.destination("payments")
    assert destination.load_balancer.algorithm is Algorithm.RING_HASH
    assert destination.load_balancer.hash_header == "x-user"
    assert destination.connection_pool.max_pending == 2
    assert destination.outlier_detection is not None
    assert destination.outlier_detection.consecutive_5xx == 3
    assert destination.retry_budget.percent == 25
    assert dict(destination.subsets["v2"]) == {"version": "v2"}


def test_rules_come_first_and_a_default_catch_all_closes_the_list() -> None:
    routes = load(SHOP).routes_for("payments")
    assert [route.name for route in routes] == ["canary", "charges", "default"]
    canary_head = RequestHead("GET", "/x", {"x-canary": "1"})
    charge_head = RequestHead("POST", "/charge/9", {})
    assert first_match(routes, canary_head) is routes[0]
    assert first_match(routes, charge_head) is routes[1]
    assert first_match(routes, RequestHead("GET", "/", {})) is routes[2]


def test_a_rule_inherits_the_service_defaults_it_does_not_replace() -> None:
    canary, charges, default = load(SHOP).routes_for("payments")
    assert canary.timeout == 2
    assert canary.retries == default.retries
    assert canary.retries.attempts == 3
    assert canary.retries.retry_on == {RetryOn.FIVE_XX, RetryOn.RESET}
    assert canary.retries.backoff_cap == 0.1
    assert [d.subset for d in canary.split.destinations] == ["v2"]
    assert charges.retries.attempts == 0
    assert [(d.subset, d.weight) for d in charges.split.destinations] == [("v1", 90), ("v2", 10)]


def test_faults_rate_limits_and_header_rewrites_are_read() -> None:
    canary, charges, _ = load(SHOP).routes_for("payments")
    assert charges.fault is not None
    assert charges.fault.delay == Delay(0.2, 10)
    assert charges.fault.abort == Abort(503, 1)
    assert charges.rate_limit is not None
    assert (charges.rate_limit.max_tokens, charges.rate_limit.tokens_per_fill) == (100, 100)
    assert dict(canary.headers.request.set) == {"x-route": "canary"}
    assert canary.headers.request.remove == {"x-debug"}


def test_authorization_names_services_as_spiffe_identities() -> None:
    access = load(SHOP).access_for("payments")
    assert access.default_deny
    policies = access.resolved("shop")
    assert policies[0].rules[0].principals == ("spiffe://shop/service/orders",)
    charge = Request("spiffe://shop/service/orders", "POST", "/charge")
    assert authorize(policies, charge, default_deny=True).policy == "orders-may-charge"
    admin = Request("spiffe://shop/service/orders", "POST", "/admin/x")
    assert authorize(policies, admin).policy == "no-admin"
    assert policies[1].action is Action.DENY


def test_services_the_mesh_section_does_not_name_get_the_defaults() -> None:
    policy = load(SHOP)
    assert policy.mtls_mode("db") is MtlsMode.STRICT
    (route,) = policy.routes_for("db")
    assert route.split.destinations[0].service == "db"
    assert route.retries.attempts == 2
    assert policy.destination("db").outlier_detection is None
    assert not policy.access_for("db").default_deny


def test_without_a_mesh_section_nothing_is_added() -> None:
    manifest = parse_manifest("app: shop\n", sections=MESH_SECTIONS)
    assert "mesh" not in manifest.extensions


def test_an_empty_mtls_default_is_permissive() -> None:
    assert load(with_mesh("routes: {}\n")).mtls is MtlsMode.PERMISSIVE


def test_unknown_services_lists_names_the_manifest_does_not_declare() -> None:
    assert unknown_services(load(SHOP), ["payments", "orders"]) == []
    assert unknown_services(load(SHOP), ["orders"]) == ["payments"]


@pytest.mark.parametrize(
    ("mesh", "expected"),
    [
        (
            "routes:\n  payments:\n    retries:\n      attempts: -1\n",
            "dirigent.yaml:6: mesh.routes.payments.retries.attempts: expected an integer >= 0",
        ),
        (
            "routes:\n  payments:\n    timeout: 0\n",
            "dirigent.yaml:5: mesh.routes.payments.timeout: expected a number > 0",
        ),
        (
            "routes:\n  payments:\n    retries: {retry_on: [5xx, sometimes]}\n",
            "dirigent.yaml:5: mesh.routes.payments.retries.retry_on[1]: expected one of: 5xx, "
            "gateway-error, connect-failure, reset, retriable-4xx, retriable-status-codes",
        ),
        (
            "routes:\n  payments:\n    split: {v1: 100}\n",
            "dirigent.yaml:5: mesh.routes.payments.split.v1: unknown subset; "
            "mesh.destinations.payments.subsets defines none",
        ),
        (
            "destinations:\n  payments:\n    subsets: {v1: {version: v1}}\n"
            "routes:\n  payments:\n    split: {v1: 90, v3: 10}\n",
            "dirigent.yaml:8: mesh.routes.payments.split.v3: unknown subset; "
            "mesh.destinations.payments.subsets defines: v1",
        ),
        (
            "destinations:\n  payments:\n    subsets: {v1: {version: v1}, v2: {version: v2}}\n"
            "routes:\n  payments:\n    split: {v1: 90, v2: 5}\n",
            "dirigent.yaml:8: mesh.routes.payments.split: weights must add up to 100, not 95",
        ),
        (
            "routes:\n  payments:\n    rules:\n      - match: {path: {regex: '(unclosed'}}\n",
            "dirigent.yaml:6: mesh.routes.payments.rules[0].match.path.regex: "
            "invalid regular expression: missing ), unterminated subpattern at position 0",
        ),
        (
            "routes:\n  payments:\n    rules:\n      - match: {path: {exact: /a, prefix: /b}}\n",
            "dirigent.yaml:6: mesh.routes.payments.rules[0].match.path: "
            "expected exactly one of: exact, prefix, regex",
        ),
        (
            "routes:\n  payments:\n    rules:\n      - {name: a}\n      - {name: a}\n",
            "dirigent.yaml:7: mesh.routes.payments.rules[1].name: "
            "duplicate rule name (first used on line 6)",
        ),
        (
            "routes:\n  payments:\n    fault: {abort: {status: 700}}\n",
            "dirigent.yaml:5: mesh.routes.payments.fault.abort.status: "
            "expected an HTTP status code from 100 to 599",
        ),
        (
            "routes:\n  payments:\n    fault: {delay: {fixed: 1, percent: 120}}\n",
            "dirigent.yaml:5: mesh.routes.payments.fault.delay.percent: "
            "expected a percentage between 0 and 100",
        ),
        (
            "routes:\n  payments:\n    fault: {delay: {percent: 10}}\n",
            "dirigent.yaml:5: mesh.routes.payments.fault.delay.fixed: required key is missing",
        ),
        (
            "routes:\n  payments:\n    rate_limit: {max_tokens: 0}\n",
            "dirigent.yaml:5: mesh.routes.payments.rate_limit.max_tokens: expected an integer >= 1",
        ),
        (
            "routes:\n  payments:\n    retries: {backoff: {base_interval: 1, max_interval: 0.5}}\n",
            "dirigent.yaml:5: mesh.routes.payments.retries.backoff.max_interval: "
            "expected a number >= base_interval (1)",
        ),
        (
            "routes:\n  payments:\n    retires: {attempts: 1}\n",
            "dirigent.yaml:5: mesh.routes.payments.retires: unknown key (did you mean "
            "'retries'?); expected one of: fault, headers, mirror, rate_limit, retries, "
            "rules, split, timeout",
        ),
        (
            "routes:\n  Payments: {timeout: 1}\n",
            "dirigent.yaml:4: mesh.routes.Payments: expected a lowercase name of letters, "
            "digits and '-' (a DNS label)",
        ),
        (
            "mtls: STRICTEST\n",
            "dirigent.yaml:3: mesh.mtls: expected one of: STRICT, PERMISSIVE, DISABLE",
        ),
        (
            "destinations:\n  payments:\n    load_balancer: RANDOM\n",
            "dirigent.yaml:5: mesh.destinations.payments.load_balancer: "
            "expected one of: ROUND_ROBIN, LEAST_REQUEST",
        ),
        (
            "destinations:\n  payments:\n    outlier_detection: {max_ejection_percent: 101}\n",
            "dirigent.yaml:5: mesh.destinations.payments.outlier_detection."
            "max_ejection_percent: expected a percentage between 0 and 100",
        ),
        (
            "destinations:\n  payments:\n    connection_pool: {max_connections: 0}\n",
            "dirigent.yaml:5: mesh.destinations.payments.connection_pool.max_connections: "
            "expected an integer >= 1",
        ),
        (
            "authorization:\n  payments:\n    policies:\n      - {action: ALLOW}\n",
            "dirigent.yaml:6: mesh.authorization.payments.policies[0].name: "
            "required key is missing",
        ),
        (
            "authorization:\n  payments:\n    policies:\n      - {name: p, action: PERMIT}\n",
            "dirigent.yaml:6: mesh.authorization.payments.policies[0].action: "
            "expected one of: ALLOW, DENY",
        ),
        (
            "authorization:\n  payments:\n    policies:\n"
            "      - {name: p, action: ALLOW, rules: [{methods: [post]}]}\n",
            "dirigent.yaml:6: mesh.authorization.payments.policies[0].rules[0].methods[0]: "
            "expected an HTTP method in capitals (GET, HEAD, POST, PUT, DELETE, PATCH, "
            "OPTIONS, CONNECT, TRACE) or '*'",
        ),
        (
            "authorization:\n  payments:\n    policies:\n"
            "      - {name: p, action: ALLOW, rules: [{paths: [charge]}]}\n",
            "dirigent.yaml:6: mesh.authorization.payments.policies[0].rules[0].paths[0]: "
            "expected a path starting with '/' (or '*' for a suffix match)",
        ),
    ],
)
def test_each_mistake_is_reported_with_line_and_path(mesh: str, expected: str) -> None:
    assert problems(with_mesh(mesh)) == [expected]


def test_every_mistake_is_reported_at_once() -> None:
    found = problems(
        with_mesh(
            """\
            mtls: NONE
            routes:
              payments:
                timeout: -1
                retries: {attempts: x}
            """
        )
    )
    assert [p.split(": ")[1] for p in found] == [
        "mesh.mtls",
        "mesh.routes.payments.timeout",
        "mesh.routes.payments.retries.attempts",
    ]
