"""Weighted splits send each share of traffic to its destination."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from dirigent.mesh.policy.split import Destination, Split

V1 = Destination("payments", "v1", 90)
V2 = Destination("payments", "v2", 10)


def test_draws_below_the_first_weight_go_to_the_first_destination() -> None:
    split = Split.of([V1, V2])
    assert split.choose(0.0) == V1
    assert split.choose(0.899) == V1
    assert split.choose(0.9) == V2
    assert split.choose(0.999) == V2


def test_a_90_10_split_lands_within_a_point_over_many_draws() -> None:
    split, rng = Split.of([V1, V2]), random.Random(11)
    counts = Counter(split.choose(rng.random()) for _ in range(20_000))
    assert abs(counts[V2] / 20_000 - 0.10) < 0.01


def test_a_zero_weight_destination_gets_nothing() -> None:
    off = Destination("payments", "v3", 0)
    split = Split.of([V1, off, V2])
    assert {split.choose(i / 1000) for i in range(1000)} == {V1, V2}


def test_weights_need_not_add_up_to_100() -> None:
    split = Split.of([Destination("a", weight=1), Destination("b", weight=1)])
    assert split.choose(0.49).service == "a"
    assert split.choose(0.5).service == "b"


def test_a_draw_of_exactly_one_still_lands_on_a_destination() -> None:
    assert Split.of([V1, V2]).choose(1.0) == V2


@pytest.mark.parametrize(
    "destinations",
    [[], [Destination("a", weight=0)], [Destination("a", weight=-1), Destination("b")]],
)
def test_unusable_weights_are_refused(destinations: list[Destination]) -> None:
    with pytest.raises(ValueError, match=r"destination|weight"):
        Split.of(destinations)
