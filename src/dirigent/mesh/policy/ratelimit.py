"""Local rate limiting with a token bucket, as Envoy's local rate limit filter does.

The bucket holds at most ``max_tokens``; every ``fill_interval`` seconds it
gains ``tokens_per_fill`` (up to the maximum). Each request takes one token;
a request that finds the bucket empty is refused (the proxy answers 429).
Fills happen in whole intervals counted from the bucket's start, as in
Envoy, so the result for a given sequence of times is exact and repeatable.

This module must never read a clock: ``now`` is an argument, in seconds on
any monotonic scale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenBucket:
    max_tokens: int
    tokens_per_fill: int
    fill_interval: float

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.tokens_per_fill < 1 or self.fill_interval <= 0:
            raise ValueError("a token bucket needs max_tokens, tokens_per_fill >= 1, interval > 0")


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens: int
    #: the time of the last whole fill; later fills are counted from it
    filled_at: float


def full(bucket: TokenBucket, now: float) -> BucketState:
    """A bucket that starts full at ``now``."""
    return BucketState(bucket.max_tokens, now)


def refill(bucket: TokenBucket, state: BucketState, now: float) -> BucketState:
    fills = int((now - state.filled_at) // bucket.fill_interval)
    if fills <= 0:
        return state
    tokens = min(bucket.max_tokens, state.tokens + fills * bucket.tokens_per_fill)
    return BucketState(tokens, state.filled_at + fills * bucket.fill_interval)


def take(bucket: TokenBucket, state: BucketState, now: float) -> tuple[bool, BucketState]:
    """Take one token for a request at ``now``: whether it may pass, and the new state."""
    state = refill(bucket, state, now)
    if state.tokens < 1:
        return False, state
    return True, BucketState(state.tokens - 1, state.filled_at)


def retry_after(bucket: TokenBucket, state: BucketState, now: float) -> float:
    """Seconds until the next token arrives (0 when one is there now), for Retry-After."""
    state = refill(bucket, state, now)
    if state.tokens >= 1:
        return 0.0
    return max(state.filled_at + bucket.fill_interval - now, 0.0)
