"""Retries: which outcomes are retried, backoff, budget, per-try timeouts, the decision."""

from __future__ import annotations

import pytest

from dirigent.mesh.policy.outcome import Failure, Outcome
from dirigent.mesh.policy.retry import (
    GiveUp,
    Retry,
    RetryBudget,
    RetryOn,
    RetryPolicy,
    backoff,
    decide,
    retriable,
    try_timeout,
    within_budget,
)


def on(*conditions: RetryOn, statuses: frozenset[int] = frozenset()) -> RetryPolicy:
    return RetryPolicy(retry_on=frozenset(conditions), retriable_statuses=statuses)


@pytest.mark.parametrize(
    ("condition", "outcome", "expected"),
    [
        (RetryOn.FIVE_XX, 500, True),
        (RetryOn.FIVE_XX, 503, True),
        (RetryOn.FIVE_XX, Failure.RESET, True),
        (RetryOn.FIVE_XX, Failure.TIMEOUT, True),
        (RetryOn.FIVE_XX, 404, False),
        (RetryOn.GATEWAY_ERROR, 502, True),
        (RetryOn.GATEWAY_ERROR, 504, True),
        (RetryOn.GATEWAY_ERROR, 500, False),
        (RetryOn.GATEWAY_ERROR, Failure.CONNECT_FAILURE, True),
        (RetryOn.CONNECT_FAILURE, Failure.CONNECT_FAILURE, True),
        (RetryOn.CONNECT_FAILURE, Failure.RESET, False),
        (RetryOn.CONNECT_FAILURE, 503, False),
        (RetryOn.RESET, Failure.RESET, True),
        (RetryOn.RESET, Failure.TIMEOUT, True),
        (RetryOn.RESET, Failure.CONNECT_FAILURE, True),
        (RetryOn.RESET, 500, False),
        (RetryOn.RETRIABLE_4XX, 409, True),
        (RetryOn.RETRIABLE_4XX, 429, False),
        (RetryOn.RETRIABLE_4XX, 200, False),
    ],
)
def test_each_condition_retries_exactly_its_outcomes(
    condition: RetryOn, outcome: Outcome, expected: bool
) -> None:
    assert retriable(on(condition), outcome) is expected


def test_retriable_status_codes_retry_only_the_listed_codes() -> None:
    policy = on(RetryOn.RETRIABLE_STATUS_CODES, statuses=frozenset({429, 503}))
    assert retriable(policy, 429)
    assert not retriable(policy, 500)


def test_no_condition_means_nothing_is_retried() -> None:
    assert not retriable(on(), Failure.CONNECT_FAILURE)


def test_the_default_policy_retries_connect_failures_and_503_twice() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 2
    assert retriable(policy, Failure.CONNECT_FAILURE)
    assert retriable(policy, 503)
    assert not retriable(policy, 500)


def test_backoff_is_a_jittered_draw_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(base_interval=0.1, max_interval=10)
    assert backoff(policy, 1, lambda: 0.5) == pytest.approx(0.05)  # [0, 1 * base]
    assert backoff(policy, 2, lambda: 0.5) == pytest.approx(0.15)  # [0, 3 * base]
    assert backoff(policy, 3, lambda: 0.999) == pytest.approx(0.6993)  # [0, 7 * base]
    assert backoff(policy, 3, lambda: 0.0) == 0.0


def test_backoff_never_exceeds_the_cap_even_after_many_retries() -> None:
    policy = RetryPolicy(base_interval=0.025)  # cap defaults to 10 * base
    assert backoff(policy, 500, lambda: 0.999) <= 0.25


def test_backoff_numbers_retries_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff(RetryPolicy(), 0, lambda: 0.5)


def test_the_budget_allows_its_share_of_active_requests() -> None:
    budget = RetryBudget(percent=20, min_concurrency=3)
    assert within_budget(budget, active_requests=100, active_retries=19)
    assert not within_budget(budget, active_requests=100, active_retries=20)


def test_the_budget_always_allows_the_minimum_concurrency() -> None:
    budget = RetryBudget(percent=20, min_concurrency=3)
    assert within_budget(budget, active_requests=1, active_retries=2)
    assert not within_budget(budget, active_requests=1, active_retries=3)


def test_the_per_try_timeout_is_cut_to_the_time_left_before_the_deadline() -> None:
    policy = RetryPolicy(per_try_timeout=1.0)
    assert try_timeout(policy, now=0, deadline=5) == 1.0
    assert try_timeout(policy, now=4.5, deadline=5) == 0.5
    assert try_timeout(policy, now=6, deadline=5) == 0.0
    assert try_timeout(policy, now=0, deadline=None) == 1.0
    assert try_timeout(RetryPolicy(), now=1, deadline=5) == 4
    assert try_timeout(RetryPolicy(), now=1, deadline=None) is None


def make_decision(
    outcome: Outcome,
    retries_done: int = 0,
    *,
    deadline: float | None = None,
    budget_ok: bool = True,
    policy: RetryPolicy | None = None,
) -> object:
    policy = policy or RetryPolicy(attempts=2, retry_on=frozenset({RetryOn.FIVE_XX}))
    return decide(
        policy, outcome, retries_done, now=10, deadline=deadline, budget_ok=budget_ok,
        draw=lambda: 0.5,
    )  # fmt: skip


def test_a_retriable_failure_is_retried_after_its_backoff() -> None:
    decision = make_decision(503)
    assert isinstance(decision, Retry)
    assert decision.retry == 1
    assert decision.delay == pytest.approx(0.0125)


def test_a_success_or_a_client_error_is_final() -> None:
    assert make_decision(200) is GiveUp.NOT_RETRIABLE
    assert make_decision(404) is GiveUp.NOT_RETRIABLE


def test_no_retry_once_the_attempts_are_spent() -> None:
    assert isinstance(make_decision(503, retries_done=1), Retry)
    assert make_decision(503, retries_done=2) is GiveUp.ATTEMPTS_EXHAUSTED


def test_zero_attempts_turns_retries_off() -> None:
    policy = RetryPolicy(attempts=0, retry_on=frozenset({RetryOn.FIVE_XX}))
    assert make_decision(503, policy=policy) is GiveUp.ATTEMPTS_EXHAUSTED


def test_no_retry_when_the_budget_is_spent() -> None:
    assert make_decision(503, budget_ok=False) is GiveUp.BUDGET_EXHAUSTED


def test_no_retry_whose_backoff_would_end_past_the_deadline() -> None:
    assert make_decision(503, deadline=10.01) is GiveUp.DEADLINE
    assert isinstance(make_decision(503, deadline=11), Retry)
