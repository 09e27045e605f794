"""WorkerStats.utilization: the share of the loop's time spent working."""

from __future__ import annotations

import pytest

from dirigent.engine.worker import WorkerStats


def test_a_loop_that_has_not_run_has_no_utilization() -> None:
    assert WorkerStats().utilization == 0.0


def test_utilization_is_busy_time_over_all_time() -> None:
    assert WorkerStats(busy_seconds=3.0, idle_seconds=1.0).utilization == pytest.approx(0.75)


def test_a_loop_that_never_waited_is_saturated() -> None:
    assert WorkerStats(busy_seconds=2.0).utilization == 1.0
