"""Outlier detection ejects a failing endpoint for a growing time and readmits it."""

from __future__ import annotations

from dirigent.mesh.policy.outcome import Failure, Outcome
from dirigent.mesh.policy.outlier import (
    Ejected,
    OutlierDetection,
    OutlierState,
    admitted,
    forget,
    observe,
    readmit,
)

POLICY = OutlierDetection(
    consecutive_5xx=3, interval=10, base_ejection_time=30, max_ejection_percent=50
)


def feed(
    state: OutlierState,
    address: str,
    outcomes: list[Outcome],
    *,
    now: float = 0.0,
    policy: OutlierDetection = POLICY,
    pool_size: int = 4,
) -> tuple[OutlierState, list[Ejected]]:
    events = []
    for outcome in outcomes:
        state, event = observe(policy, state, address, outcome, now=now, pool_size=pool_size)
        if event is not None:
            events.append(event)
    return state, events


def test_consecutive_5xx_reaching_the_threshold_ejects_the_endpoint() -> None:
    state, events = feed(OutlierState(), "a", [500, 503, 500], now=5)
    assert events == [Ejected("a", 35, 1)]
    assert state.ejected() == {"a"}


def test_a_success_in_between_resets_the_run() -> None:
    state, events = feed(OutlierState(), "a", [500, 500, 200, 500, 500])
    assert events == []
    assert state.ejected() == frozenset()


def test_4xx_is_not_a_failure_of_the_endpoint_and_resets_the_run() -> None:
    _, events = feed(OutlierState(), "a", [500, 500, 404, 500])
    assert events == []


def test_connection_failures_count_as_5xx() -> None:
    _, events = feed(OutlierState(), "a", [Failure.CONNECT_FAILURE, Failure.RESET, 502])
    assert len(events) == 1


def test_gateway_errors_eject_on_their_own_threshold() -> None:
    policy = OutlierDetection(consecutive_5xx=0, consecutive_gateway_errors=2)
    _, events = feed(OutlierState(), "a", [502, Failure.TIMEOUT], policy=policy)
    assert len(events) == 1


def test_a_plain_500_breaks_a_run_of_gateway_errors() -> None:
    policy = OutlierDetection(consecutive_5xx=0, consecutive_gateway_errors=2)
    _, events = feed(OutlierState(), "a", [502, 500, 503], policy=policy)
    assert events == []


def test_a_threshold_of_zero_turns_the_check_off() -> None:
    policy = OutlierDetection(consecutive_5xx=0, consecutive_gateway_errors=0)
    _, events = feed(OutlierState(), "a", [500] * 50, policy=policy)
    assert events == []


def test_an_ejected_endpoint_is_readmitted_once_its_time_has_passed() -> None:
    state, _ = feed(OutlierState(), "a", [500] * 3, now=0)
    state, back = readmit(POLICY, state, now=29.9)
    assert back == frozenset()
    assert state.ejected() == {"a"}
    state, back = readmit(POLICY, state, now=30)
    assert back == {"a"}
    assert state.ejected() == frozenset()


def test_readmission_clears_the_run_so_one_failure_does_not_eject_again() -> None:
    state, _ = feed(OutlierState(), "a", [500] * 3, now=0)
    state, _ = readmit(POLICY, state, now=30)
    state, events = feed(state, "a", [500], now=31)
    assert events == []


def test_ejection_time_grows_with_the_number_of_ejections() -> None:
    state, first = feed(OutlierState(), "a", [500] * 3, now=0)
    state, _ = readmit(POLICY, state, now=30)
    state, second = feed(state, "a", [500] * 3, now=31)
    assert first[0].until == 30
    assert second == [Ejected("a", 31 + 60, 2)]


def test_ejection_time_is_capped_at_the_maximum() -> None:
    policy = OutlierDetection(consecutive_5xx=1, base_ejection_time=100, max_ejection_time=150)
    state, _ = feed(OutlierState(), "a", [500], policy=policy)
    state, _ = readmit(policy, state, now=100)
    _, events = feed(state, "a", [500], now=101, policy=policy)
    assert events[0].until == 101 + 150


def test_staying_healthy_for_an_interval_earns_back_an_ejection() -> None:
    state, _ = feed(OutlierState(), "a", [500] * 3, now=0)
    state, _ = readmit(POLICY, state, now=30)
    state, _ = readmit(POLICY, state, now=40)  # one full interval in: count 1 -> 0
    _, events = feed(state, "a", [500] * 3, now=41)
    assert events == [Ejected("a", 41 + 30, 1)]


def test_no_ejection_beyond_the_maximum_ejected_share() -> None:
    # 50 % of 4 endpoints: two may be out, the third stays in
    state, _ = feed(OutlierState(), "a", [500] * 3)
    state, _ = feed(state, "b", [500] * 3)
    state, events = feed(state, "c", [500] * 3)
    assert events == []
    assert state.ejected() == {"a", "b"}


def test_one_endpoint_may_always_be_ejected_even_under_a_small_share() -> None:
    policy = OutlierDetection(consecutive_5xx=1, max_ejection_percent=10)
    state, events = feed(OutlierState(), "a", [500], policy=policy, pool_size=2)
    assert len(events) == 1
    _, events = feed(state, "b", [500], policy=policy, pool_size=2)
    assert events == []


def test_late_outcomes_of_an_ejected_endpoint_do_not_extend_its_ejection() -> None:
    state, _ = feed(OutlierState(), "a", [500] * 3, now=0)
    later, events = feed(state, "a", [500] * 5, now=10)
    assert events == []
    assert later == state


def test_admitted_keeps_order_and_drops_ejected_endpoints() -> None:
    state, _ = feed(OutlierState(), "b", [500] * 3)
    assert admitted(state, ["a", "b", "c"]) == ["a", "c"]


def test_forget_drops_records_of_endpoints_that_are_gone() -> None:
    state, _ = feed(OutlierState(), "b", [500] * 3)
    assert forget(state, {"a"}).hosts == {}
    assert forget(state, {"b"}) is state


def test_successes_on_a_clean_endpoint_leave_the_state_untouched() -> None:
    state = OutlierState()
    assert feed(state, "a", [200, 204])[0] is state
