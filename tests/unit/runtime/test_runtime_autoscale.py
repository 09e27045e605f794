"""The autoscaler follows the Kubernetes HPA algorithm, step by step, on a fake clock."""

from __future__ import annotations

from types import MappingProxyType

from dirigent.manifest.model import Autoscale, Behavior, ScalingPolicy, ScalingRules
from dirigent.runtime.autoscale import (
    Recommendation,
    ScaleEvent,
    ScalerHistory,
    autoscale,
    proposal,
)

NO_LIMITS = Behavior(
    scale_up=ScalingRules(
        stabilization_window=0.0, policies=(ScalingPolicy(type="percent", value=1000, period=1.0),)
    ),
    scale_down=ScalingRules(
        stabilization_window=0.0, policies=(ScalingPolicy(type="percent", value=100, period=1.0),)
    ),
)


def spec(behavior: Behavior = NO_LIMITS, **targets: float) -> Autoscale:
    return Autoscale(
        min=1, max=20, targets=MappingProxyType(targets or {"cpu": 50.0}), behavior=behavior
    )


def test_the_formula_is_ceil_of_current_times_the_ratio() -> None:
    assert proposal(3, 100.0, 50.0, 0.1) == 6
    assert proposal(3, 60.0, 50.0, 0.1) == 4  # ceil(3.6)
    assert proposal(4, 10.0, 50.0, 0.1) == 1


def test_ratios_within_the_tolerance_keep_the_count() -> None:
    assert proposal(5, 54.0, 50.0, 0.1) == 5
    assert proposal(5, 46.0, 50.0, 0.1) == 5


def test_the_largest_proposal_of_all_metrics_wins() -> None:
    decision = autoscale(
        spec(cpu=50.0, rps=100.0), 2, {"cpu": 50.0, "rps": 300.0}, ScalerHistory(), 0.0
    )
    assert decision.replicas == 6


def test_unknown_metrics_are_ignored_and_none_keeps_the_count() -> None:
    decision = autoscale(
        spec(cpu=50.0, rps=100.0), 3, {"cpu": None, "rps": None}, ScalerHistory(), 0.0
    )
    assert decision.replicas == 3


def test_a_five_fold_load_step_scales_up_at_once_without_a_window() -> None:
    decision = autoscale(spec(), 1, {"cpu": 250.0}, ScalerHistory(), 0.0)
    assert decision.replicas == 5
    assert decision.history.events == (ScaleEvent(0.0, 4),)


def test_scale_down_waits_for_the_highest_recommendation_of_its_window() -> None:
    behavior = Behavior(
        scale_up=NO_LIMITS.scale_up,
        scale_down=ScalingRules(stabilization_window=60.0, policies=NO_LIMITS.scale_down.policies),
    )
    history = ScalerHistory(recommendations=(Recommendation(0.0, 5),))
    held = autoscale(spec(behavior), 5, {"cpu": 10.0}, history, 30.0)
    assert held.replicas == 5
    assert held.reason == "held by stabilization window"
    later = autoscale(spec(behavior), 5, {"cpu": 10.0}, held.history, 61.0)
    assert later.replicas == 1


def test_scale_up_follows_the_lowest_recommendation_of_its_window() -> None:
    behavior = Behavior(
        scale_up=ScalingRules(stabilization_window=10.0, policies=NO_LIMITS.scale_up.policies),
        scale_down=NO_LIMITS.scale_down,
    )
    history = ScalerHistory(recommendations=(Recommendation(0.0, 3), Recommendation(5.0, 8)))
    assert autoscale(spec(behavior), 2, {"cpu": 500.0}, history, 6.0).replicas == 3


def test_the_default_scale_up_policy_allows_four_pods_or_double_per_period() -> None:
    defaults = spec(Behavior())
    assert autoscale(defaults, 1, {"cpu": 1000.0}, ScalerHistory(), 0.0).replicas == 5
    assert autoscale(defaults, 10, {"cpu": 1000.0}, ScalerHistory(), 0.0).replicas == 20


def test_changes_made_within_a_period_count_against_its_policy() -> None:
    pods = Behavior(
        scale_up=ScalingRules(
            stabilization_window=0.0, policies=(ScalingPolicy(type="pods", value=2, period=15.0),)
        ),
        scale_down=NO_LIMITS.scale_down,
    )
    first = autoscale(spec(pods), 2, {"cpu": 500.0}, ScalerHistory(), 0.0)
    assert first.replicas == 4
    second = autoscale(spec(pods), 4, {"cpu": 500.0}, first.history, 5.0)
    assert second.replicas == 4
    assert second.reason == "scale-up limited by policy"
    third = autoscale(spec(pods), 4, {"cpu": 500.0}, second.history, 16.0)
    assert third.replicas == 6


def test_select_min_takes_the_policy_allowing_the_least_change() -> None:
    rules = ScalingRules(
        stabilization_window=0.0,
        select="min",
        policies=(
            ScalingPolicy(type="pods", value=1, period=15.0),
            ScalingPolicy(type="percent", value=50, period=15.0),
        ),
    )
    decision = autoscale(
        spec(Behavior(scale_up=NO_LIMITS.scale_up, scale_down=rules)),
        10,
        {"cpu": 5.0},
        ScalerHistory(),
        0.0,
    )
    assert decision.replicas == 9


def test_a_disabled_direction_never_scales() -> None:
    behavior = Behavior(
        scale_up=NO_LIMITS.scale_up,
        scale_down=ScalingRules(stabilization_window=0.0, select="disabled"),
    )
    assert autoscale(spec(behavior), 6, {"cpu": 1.0}, ScalerHistory(), 0.0).replicas == 6


def test_the_count_stays_within_min_and_max() -> None:
    assert autoscale(spec(), 10, {"cpu": 5000.0}, ScalerHistory(), 0.0).replicas == 20
    assert autoscale(spec(), 2, {"cpu": 0.1}, ScalerHistory(), 0.0).replicas == 1


def test_history_older_than_every_window_and_period_is_dropped() -> None:
    history = ScalerHistory(recommendations=(Recommendation(0.0, 4),), events=(ScaleEvent(0.0, 3),))
    decision = autoscale(spec(), 4, {"cpu": 50.0}, history, 400.0)
    assert decision.history == ScalerHistory(recommendations=(Recommendation(400.0, 4),))
