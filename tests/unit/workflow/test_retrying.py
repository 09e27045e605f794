"""Retry and Catch matching rules and backoff, as AWS documents them."""

from __future__ import annotations

import pytest

from dirigent.asl.model import Catcher, Retrier
from dirigent.workflow.retrying import backoff_seconds, first_catcher, first_retrier, handles


def test_states_all_matches_any_named_error() -> None:
    assert handles(["States.ALL"], "Payments.Declined")
    assert handles(["States.ALL"], "States.Timeout")


def test_states_runtime_is_never_retried_or_caught() -> None:
    assert not handles(["States.ALL"], "States.Runtime")
    assert not handles(["States.Runtime"], "States.Runtime")


def test_task_failed_matches_everything_but_timeouts() -> None:
    assert handles(["States.TaskFailed"], "Lambda.ServiceException")
    assert not handles(["States.TaskFailed"], "States.Timeout")


def test_the_first_matching_retrier_wins() -> None:
    retriers = [
        Retrier(error_equals=("A",)),
        Retrier(error_equals=("B", "C")),
        Retrier(error_equals=("States.ALL",)),
    ]
    assert first_retrier(retriers, "C") == 1
    assert first_retrier(retriers, "Z") == 2
    assert first_retrier(retriers[:2], "Z") is None


def test_the_first_matching_catcher_wins() -> None:
    catchers = [Catcher(error_equals=("X",), next="a"), Catcher(error_equals=("X",), next="b")]
    found = first_catcher(catchers, "X")
    assert found is not None
    assert found.next == "a"


@pytest.mark.parametrize(("attempt", "expected"), [(0, 3.0), (1, 6.0), (2, 12.0), (3, 20.0)])
def test_backoff_grows_by_the_rate_and_stops_at_the_cap(attempt: int, expected: float) -> None:
    retrier = Retrier(
        error_equals=("X",), interval_seconds=3, backoff_rate=2.0, max_delay_seconds=20
    )
    assert backoff_seconds(retrier, attempt, 0.5) == expected


def test_full_jitter_scales_the_backoff_by_the_random_draw() -> None:
    retrier = Retrier(error_equals=("X",), interval_seconds=4, jitter_strategy="FULL")
    assert backoff_seconds(retrier, 1, 0.25) == 2.0
    assert backoff_seconds(retrier, 1, 0.0) == 0.0
