"""Probe verdicts count consecutive results against their thresholds."""

from __future__ import annotations

from dirigent.manifest.model import Probe, Probes
from dirigent.runtime.model import StopReason
from dirigent.runtime.probes import ProbeState, ReplicaHealth, record

READY = Probe(kind="http", path="/ready", success_threshold=2, failure_threshold=3)
LIVE = Probe(kind="tcp", failure_threshold=3)
START = Probe(kind="exec", command=("true",), failure_threshold=2)


def results(health: ReplicaHealth, role: str, *oks: bool) -> ReplicaHealth:
    for ok in oks:
        health = health.with_result(role, ok)  # type: ignore[arg-type]
    return health


def test_readiness_needs_its_success_threshold_in_a_row() -> None:
    health = ReplicaHealth(Probes(readiness=READY))
    assert not results(health, "readiness", True).ready
    assert not results(health, "readiness", True, False, True).ready
    assert results(health, "readiness", True, True).ready


def test_readiness_is_lost_after_its_failure_threshold_and_regained() -> None:
    health = results(ReplicaHealth(Probes(readiness=READY)), "readiness", True, True)
    assert results(health, "readiness", False, False).ready
    lost = results(health, "readiness", False, False, False)
    assert not lost.ready
    assert results(lost, "readiness", True, True).ready


def test_a_replica_without_probes_is_ready_at_once() -> None:
    assert ReplicaHealth(Probes()).ready


def test_liveness_fails_only_after_consecutive_failures() -> None:
    health = ReplicaHealth(Probes(liveness=LIVE))
    assert results(health, "liveness", False, False, True, False, False).unhealthy is None
    assert results(health, "liveness", False, False, False).unhealthy is StopReason.LIVENESS


def test_other_probes_wait_for_the_startup_probe() -> None:
    health = ReplicaHealth(Probes(startup=START, readiness=READY, liveness=LIVE))
    assert health.active("startup")
    assert not health.active("readiness")
    assert not health.active("liveness")
    started = results(health, "startup", True)
    assert not started.active("startup")
    assert started.active("readiness")
    assert started.active("liveness")


def test_a_startup_probe_that_keeps_failing_makes_the_replica_unhealthy() -> None:
    health = results(ReplicaHealth(Probes(startup=START)), "startup", False, False)
    assert health.unhealthy is StopReason.STARTUP
    assert not health.ready


def test_a_startup_verdict_is_final() -> None:
    state = record("startup", START, ProbeState(), True)
    assert record("startup", START, state, False) == state
