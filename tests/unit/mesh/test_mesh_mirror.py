"""A route's mirror in the manifest, and the pure decision of which requests are copied."""

from __future__ import annotations

import textwrap

import pytest

from dirigent.manifest import InvalidManifest, parse_manifest
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.policy.mirror import Mirror, mirrored
from dirigent.mesh.section import MESH_SECTIONS

DESTINATIONS = """\
destinations:
  payments:
    subsets: {v1: {version: v1}, v2: {version: v2}}
"""


def with_mesh(mesh: str) -> str:
    return "app: shop\nmesh:\n" + textwrap.indent(textwrap.dedent(mesh), "  ")


def load(mesh: str) -> MeshPolicy:
    policy = parse_manifest(with_mesh(mesh), sections=MESH_SECTIONS).extensions["mesh"]
    assert isinstance(policy, MeshPolicy)
    return policy


def problems(mesh: str) -> list[str]:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest(with_mesh(mesh), sections=MESH_SECTIONS)
    return [str(problem) for problem in caught.value.problems]


def test_a_service_level_mirror_applies_to_every_rule_without_its_own() -> None:
    policy = load(
        DESTINATIONS
        + """\
routes:
  payments:
    mirror: {service: payments, subset: v2, percent: 25}
    rules:
      - {name: quiet, match: {path: {prefix: /health}}, mirror: {service: audit}}
      - {name: charges, match: {path: {prefix: /charge}}}
"""
    )
    quiet, charges, default = policy.routes_for("payments")
    assert quiet.mirror == Mirror("audit", None, 100.0)
    assert charges.mirror == default.mirror == Mirror("payments", "v2", 25.0)


def test_a_route_without_a_mirror_copies_nothing() -> None:
    [default] = load("routes:\n  payments: {timeout: 1}\n").routes_for("payments")
    assert default.mirror is None


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        (
            "{subset: v2}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.service: required key is missing",
        ),
        (
            "{service: Payments}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.service: expected a lowercase name "
            "of letters, digits and '-' (a DNS label)",
        ),
        (
            "{service: payments, subset: v3}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.subset: unknown subset; "
            "mesh.destinations.payments.subsets defines: v1, v2",
        ),
        (
            "{service: audit, subset: v1}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.subset: unknown subset; "
            "mesh.destinations.audit.subsets defines none",
        ),
        (
            "{service: payments, percent: 150}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.percent: "
            "expected a percentage between 0 and 100",
        ),
        (
            "{service: payments, host: x}",
            "dirigent.yaml:8: mesh.routes.payments.mirror.host: unknown key; "
            "expected one of: percent, service, subset",
        ),
    ],
)
def test_each_mirror_mistake_is_reported_with_line_and_path(mirror: str, expected: str) -> None:
    found = problems(DESTINATIONS + f"routes:\n  payments:\n    mirror: {mirror}\n")
    assert found == [expected]


def test_a_share_copies_the_requests_whose_draw_falls_below_it() -> None:
    mirror = Mirror("audit", percent=10.0)
    assert mirrored(mirror, 0.05)
    assert not mirrored(mirror, 0.1)
    assert not mirror.always
    assert Mirror("audit").always
    assert not mirrored(Mirror("audit", percent=0.0), 0.0)
