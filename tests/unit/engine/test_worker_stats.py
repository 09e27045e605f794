"""WorkerStats.utilization: the share of the loop's time spent working."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dirigent.engine import Engine, EngineSettings
from dirigent.engine.worker import WorkerStats
from dirigent.store import open_store


def test_a_loop_that_has_not_run_has_no_utilization() -> None:
    assert WorkerStats().utilization == 0.0


def test_utilization_is_busy_time_over_all_time() -> None:
    assert WorkerStats(busy_seconds=3.0, idle_seconds=1.0).utilization == pytest.approx(0.75)


def test_a_loop_that_never_waited_is_saturated() -> None:
    assert WorkerStats(busy_seconds=2.0).utilization == 1.0


def test_the_loop_counts_waiting_as_idle_and_iterations_as_busy(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'stats.db'}")
    engine = Engine(store, settings=EngineSettings(idle_poll=0.02))
    engine.start()
    try:
        time.sleep(0.3)  # nothing to do: the loop waits, wakes every idle poll, waits again
        idle = engine.worker.stats
        assert idle.idle_seconds >= 0.2
        assert idle.busy_seconds < idle.idle_seconds
        assert idle.utilization < 0.5
    finally:
        engine.stop()
        store.close()
