"""Requests to the supervisor (scale, restart, apply) set the desired state; nothing runs here."""

from __future__ import annotations

import random
from pathlib import Path

from dirigent.manifest import parse_manifest
from dirigent.runtime.supervisor import Changes, Supervisor


def manifest(greeting: str = "hello", extra: str = "") -> str:
    return (
        "app: shop\nservices:\n"
        f"  web:\n    command: [serve]\n    replicas: 2\n    env: {{GREETING: {greeting}}}\n"
        f"  db:\n    command: [db]\n{extra}"
    )


def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(
        parse_manifest(manifest()),
        base_dir=tmp_path,
        log_dir=tmp_path / "logs",
        uniform=random.Random(1).random,
        inherited_env={},
    )


def test_applying_the_same_manifest_rolls_nothing(tmp_path: Path) -> None:
    steered = supervisor(tmp_path)
    before = steered.revision("web")
    assert steered.apply(parse_manifest(manifest())) == Changes((), (), ())
    assert steered.revision("web") == before


def test_a_changed_env_var_rolls_only_its_service(tmp_path: Path) -> None:
    steered = supervisor(tmp_path)
    db = steered.revision("db")
    changes = steered.apply(parse_manifest(manifest(greeting="bonjour")))
    assert changes == Changes(added=(), removed=(), rolled=("web",))
    assert steered.revision("db") == db


def test_added_and_removed_services_are_reported(tmp_path: Path) -> None:
    steered = supervisor(tmp_path)
    text = "app: shop\nservices:\n  web:\n    command: [serve]\n  cache:\n    command: [c]\n"
    changes = steered.apply(parse_manifest(text))
    assert changes.added == ("cache",)
    assert changes.removed == ("db",)
    assert set(steered.services()) == {"web", "cache"}


def test_restart_moves_to_a_new_revision_that_scale_and_apply_keep(tmp_path: Path) -> None:
    steered = supervisor(tmp_path)
    original = steered.revision("web")
    steered.restart("web")
    restarted = steered.revision("web")
    assert restarted != original
    steered.scale("web", 5)
    assert steered.revision("web") == restarted
    assert steered.services()["web"] == 5
    steered.apply(parse_manifest(manifest()))
    assert steered.revision("web") == restarted  # no second rollout
    assert steered.services()["web"] == 2  # apply ends the scale override
    steered.restart("web")
    assert steered.revision("web") not in (original, restarted)
