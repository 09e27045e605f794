"""Load balancing picks endpoints in turn, by load, or by a stable hash of a key."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from dirigent.mesh.policy.balance import (
    Endpoint,
    HashRing,
    hash_key,
    least_request,
    round_robin,
)

A, B, C = Endpoint("127.0.0.1", 8001), Endpoint("127.0.0.1", 8002), Endpoint("127.0.0.1", 8003)


def draws(*values: float) -> Callable[[], float]:
    """A scripted random source: fails loudly if the code draws more than expected."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def test_round_robin_visits_every_endpoint_in_turn_and_wraps() -> None:
    cursor, picked = 0, []
    for _ in range(7):
        endpoint, cursor = round_robin([A, B, C], cursor)
        picked.append(endpoint)
    assert picked == [A, B, C, A, B, C, A]


def test_round_robin_cursor_survives_the_list_shrinking() -> None:
    _, cursor = round_robin([A, B, C], 2)
    endpoint, _ = round_robin([A, B], cursor + 5)
    assert endpoint in (A, B)


def test_round_robin_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one"):
        round_robin([], 0)


def test_least_request_takes_the_less_busy_of_the_two_drawn() -> None:
    # draws pick index 0 (A) then index 1 of the remaining [B, C] -> C
    assert least_request([A, B, C], {A: 5, C: 1}, draws(0.0, 0.9)) == C
    assert least_request([A, B, C], {A: 1, C: 5}, draws(0.0, 0.9)) == A


def test_least_request_never_compares_an_endpoint_with_itself() -> None:
    # both draws point at index 0; the second must be moved to another endpoint
    chosen = least_request([A, B], {A: 3, B: 0}, draws(0.0, 0.0))
    assert chosen == B


def test_least_request_prefers_the_first_draw_on_a_tie() -> None:
    assert least_request([A, B], {}, draws(0.99, 0.0)) == B


def test_least_request_with_one_endpoint_takes_no_draw() -> None:
    assert least_request([A], {}, draws()) == A


def test_least_request_tolerates_a_draw_of_exactly_one() -> None:
    assert least_request([A, B, C], {}, draws(1.0, 1.0)) in (A, B, C)


def test_least_request_steers_load_away_from_a_busy_endpoint() -> None:
    rng = random.Random(7)
    counts = Counter(least_request([A, B, C], {A: 10}, rng.random) for _ in range(3000))
    # A is only picked when drawn against itself, which the distinct draws rule out
    assert counts[A] == 0
    assert abs(counts[B] - counts[C]) < 300


def test_hash_key_is_stable_across_processes() -> None:
    # a fixed value: Python's hash() would change with PYTHONHASHSEED
    assert hash_key("alice") == hash_key("alice")
    assert hash_key("alice") != hash_key("bob")
    assert hash_key("alice") == 0x4DEAEC0CCE54DA89


def test_ring_hash_sends_the_same_key_to_the_same_endpoint() -> None:
    ring = HashRing.build([A, B, C])
    assert {ring.pick("user-42") for _ in range(10)} == {ring.pick("user-42")}


def test_ring_hash_does_not_depend_on_the_order_endpoints_are_listed() -> None:
    one, other = HashRing.build([A, B, C]), HashRing.build([C, A, B])
    keys = [f"user-{i}" for i in range(200)]
    assert [one.pick(k) for k in keys] == [other.pick(k) for k in keys]


def test_ring_hash_spreads_keys_roughly_evenly() -> None:
    ring = HashRing.build([A, B, C])
    counts = Counter(ring.pick(f"user-{i}") for i in range(6000))
    assert all(1500 < counts[e] < 2500 for e in (A, B, C)), counts


def test_removing_an_endpoint_moves_only_its_own_keys() -> None:
    before, after = HashRing.build([A, B, C]), HashRing.build([A, B])
    keys = [f"user-{i}" for i in range(3000)]
    moved = [k for k in keys if before.pick(k) != after.pick(k)]
    assert all(before.pick(k) == C for k in moved)
    assert len(moved) < 0.45 * len(keys)


def test_an_empty_ring_refuses_to_pick() -> None:
    with pytest.raises(ValueError, match="no endpoints"):
        HashRing.build([]).pick("x")


def test_endpoint_labels_select_subsets() -> None:
    v2 = Endpoint("h", 1, frozenset({("version", "v2"), ("zone", "a")}))
    assert v2.has_labels({"version": "v2"})
    assert not v2.has_labels({"version": "v1"})
    assert v2.has_labels({})
    assert v2.address == "h:1"
