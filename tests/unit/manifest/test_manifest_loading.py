"""A good manifest loads into the model, with defaults where fields are omitted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dirigent.manifest import (
    Amount,
    InvalidManifest,
    Reader,
    load_manifest,
    parse_manifest,
)

SHOP = textwrap.dedent(
    """\
    app: shop
    services:
      payments:
        command: python -m payments --port $PORT
        env: {LOG_LEVEL: debug, WORKERS: 4, DEBUG: true}
        env_file: payments.env
        port: 9000
        replicas: 2
        probes:
          readiness: {http: /ready, period: 0.2, success_threshold: 2}
          liveness: {tcp: true, period: 0.5, failure_threshold: 3}
          startup: {exec: [test, -f, /tmp/ok], initial_delay: 0.1}
        restart:
          policy: on-failure
          backoff: {initial: 0.2, cap: 5, reset_after: 30, jitter: 0.5}
        stop: {signal: INT, grace_period: 2.5}
        resources: {memory: 256Mi, cpu: 500m}
        depends_on: [db]
        rollout: {max_surge: 1, max_unavailable: 0}
      db:
        command: [python, -m, db]
        autoscale:
          min: 1
          max: 4
          metrics: {cpu: 70, p95_latency: 0.25}
          behavior:
            scale_down:
              stabilization_window: 60
              select: min
              policies: [{type: pods, value: 1, period: 10}]
    workflows: [flows/order.asl.json]
    functions:
      charge: shop.tasks:charge
    """
)


def test_a_complete_manifest_loads_every_field() -> None:
    manifest = parse_manifest(SHOP)
    payments = manifest.services["payments"]
    assert manifest.app == "shop"
    assert payments.command == ("python", "-m", "payments", "--port", "$PORT")
    assert dict(payments.env) == {"LOG_LEVEL": "debug", "WORKERS": "4", "DEBUG": "true"}
    assert payments.port == 9000
    assert payments.replicas == 2
    assert payments.probes.readiness is not None
    assert payments.probes.readiness.kind == "http"
    assert payments.probes.readiness.period == 0.2
    assert payments.probes.readiness.success_threshold == 2
    assert payments.probes.liveness is not None
    assert payments.probes.liveness.kind == "tcp"
    assert payments.probes.startup is not None
    assert payments.probes.startup.command == ("test", "-f", "/tmp/ok")
    assert payments.restart.mode == "on-failure"
    assert payments.restart.backoff.cap == 5.0
    assert payments.stop.signal == "SIGINT"
    assert payments.stop.grace_period == 2.5
    assert payments.resources.memory_bytes == 256 * 2**20
    assert payments.resources.cpu == 0.5
    assert payments.depends_on == ("db",)
    assert payments.rollout.max_surge == Amount(1)
    assert manifest.workflows == ("flows/order.asl.json",)
    assert str(manifest.functions["charge"]) == "shop.tasks:charge"


def test_autoscale_keeps_kubernetes_defaults_for_omitted_rules() -> None:
    db = parse_manifest(SHOP).services["db"]
    assert db.autoscale is not None
    assert db.replicas == 1  # starts at min when replicas is not given
    assert dict(db.autoscale.targets) == {"cpu": 70.0, "p95_latency": 0.25}
    assert db.autoscale.behavior.scale_up.stabilization_window == 0.0
    assert [p.type for p in db.autoscale.behavior.scale_up.policies] == ["pods", "percent"]
    assert db.autoscale.behavior.scale_down.select == "min"
    assert db.autoscale.behavior.scale_down.stabilization_window == 60.0


def test_omitted_fields_take_defaults() -> None:
    manifest = parse_manifest("app: a\nservices:\n  web:\n    command: ./web\n")
    web = manifest.services["web"]
    assert web.port is None
    assert web.replicas == 1
    assert web.restart.mode == "always"
    assert web.stop.signal == "SIGTERM"
    assert web.rollout.max_surge == Amount(25, percent=True)
    assert web.rollout.max_surge.resolve(3, round_up=True) == 1
    assert web.rollout.max_unavailable.resolve(3, round_up=False) == 0


def test_load_manifest_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "dirigent.yaml"
    path.write_text("app: Shop\n")
    with pytest.raises(InvalidManifest) as caught:
        load_manifest(str(path))
    assert str(caught.value).startswith(f"{path}:1: app: ")


def test_a_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match="cannot read"):
        load_manifest(str(tmp_path / "nope.yaml"))


def test_extension_sections_are_parsed_by_the_given_parser() -> None:
    def mesh(reader: Reader, node: object, path: str) -> object:
        fields = reader.fields(node, path, ("retries",))  # type: ignore[arg-type]
        return dict(fields.nodes) if fields else None

    manifest = parse_manifest("app: a\nmesh:\n  retries: 3\n", sections={"mesh": mesh})
    assert "retries" in manifest.extensions["mesh"]  # type: ignore[operator]


def test_extension_sections_report_mistakes_located_like_core_ones() -> None:
    def mesh(reader: Reader, node: object, path: str) -> object:
        return reader.fields(node, path, ("retries",))  # type: ignore[arg-type]

    with pytest.raises(InvalidManifest) as caught:
        parse_manifest("app: a\nmesh:\n  retry: 3\n", sections={"mesh": mesh})
    assert str(caught.value).startswith("dirigent.yaml:3: mesh.retry: unknown key")


def test_a_section_without_its_extension_is_an_unknown_key() -> None:
    with pytest.raises(InvalidManifest, match=r"dirigent.yaml:2: mesh: unknown key"):
        parse_manifest("app: a\nmesh: {}\n")
