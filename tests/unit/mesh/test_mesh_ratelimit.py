"""The token bucket lets a burst through, refuses the excess and refills in whole intervals."""

from __future__ import annotations

import pytest

from dirigent.mesh.policy.ratelimit import BucketState, TokenBucket, full, retry_after, take

BUCKET = TokenBucket(max_tokens=3, tokens_per_fill=1, fill_interval=1.0)


def run(times: list[float]) -> list[bool]:
    state, verdicts = full(BUCKET, 0.0), []
    for now in times:
        ok, state = take(BUCKET, state, now)
        verdicts.append(ok)
    return verdicts


def test_a_full_bucket_lets_a_burst_of_max_tokens_through_then_refuses() -> None:
    assert run([0, 0, 0, 0]) == [True, True, True, False]


def test_a_token_comes_back_after_each_whole_interval() -> None:
    assert run([0, 0, 0, 0.99, 1.0, 1.5, 2.0]) == [True, True, True, False, True, False, True]


def test_the_bucket_never_holds_more_than_its_maximum() -> None:
    assert run([100, 100, 100, 100]) == [True, True, True, False]


def test_fills_are_counted_from_the_last_fill_not_from_the_request() -> None:
    state = BucketState(tokens=0, filled_at=0.0)
    ok, state = take(BUCKET, state, 1.7)  # one fill at t=1; next one due at t=2, not 2.7
    assert ok
    assert state == BucketState(0, 1.0)
    ok, _ = take(BUCKET, state, 2.0)
    assert ok


def test_retry_after_says_when_the_next_token_arrives() -> None:
    assert retry_after(BUCKET, BucketState(0, 0.0), 0.25) == pytest.approx(0.75)
    assert retry_after(BUCKET, BucketState(1, 0.0), 0.25) == 0.0


@pytest.mark.parametrize(("tokens", "per_fill", "interval"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_an_unusable_bucket_is_refused(tokens: int, per_fill: int, interval: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(tokens, per_fill, interval)
