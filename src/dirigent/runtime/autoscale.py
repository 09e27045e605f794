"""The Kubernetes HorizontalPodAutoscaler algorithm as a pure function.

``autoscale(spec, current, metrics, history, now)`` returns the replica count
to run and the history to keep for next time. The steps are those of the HPA
controller (``pkg/controller/podautoscaler``), in the same order:

1. per metric, ``ceil(current * value / target)``, or ``current`` when the
   ratio is within the tolerance (0.1 by default) of 1; the largest proposal
   of all metrics wins;
2. stabilization: the recommendation may not rise above the *lowest*
   recommendation of the scale-up window, nor fall below the *highest* of the
   scale-down window (so scale-down waits out its window);
3. rate policies: within each policy's period, at most ``value`` pods or
   percent may be added (removed), counted from the replicas at the start of
   the period; ``select`` picks the policy allowing the most (``max``), the
   least (``min``) change, or forbids that direction (``disabled``);
4. the bounds ``min``/``max``.

No I/O, no clock, no randomness: ``now`` and the metric figures come in, the
shell keeps ``history`` between calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from dirigent.manifest.model import Autoscale, MetricName, ScalingRules


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    at: float
    change: int  # replicas added (> 0) or removed (< 0)


@dataclass(frozen=True, slots=True)
class ScalerHistory:
    recommendations: tuple[Recommendation, ...] = ()
    events: tuple[ScaleEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    recommendation: int  # what the metrics alone asked for
    history: ScalerHistory
    reason: str


def proposal(current: int, value: float, target: float, tolerance: float) -> int:
    """One metric's replica count: the HPA formula with its dead band."""
    ratio = value / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return max(1, math.ceil(current * ratio))


def autoscale(
    spec: Autoscale,
    current: int,
    metrics: Mapping[MetricName, float | None],
    history: ScalerHistory,
    now: float,
) -> Decision:
    """Decide the replica count; ``metrics`` holds per-replica averages (None when unknown)."""
    proposals = [
        proposal(max(current, 1), value, spec.targets[name], spec.tolerance)
        for name, value in metrics.items()
        if value is not None and name in spec.targets
    ]
    recommended = max(proposals) if proposals else current
    behavior = spec.behavior
    stabilized, reason = _stabilize(
        recommended, current, history, up=behavior.scale_up, down=behavior.scale_down, now=now
    )
    if stabilized > current:
        limit = _scale_up_limit(current, history.events, behavior.scale_up, now)
        if limit < stabilized:
            stabilized, reason = max(limit, current), "scale-up limited by policy"
    elif stabilized < current:
        limit = _scale_down_limit(current, history.events, behavior.scale_down, now)
        if limit > stabilized:
            stabilized, reason = min(limit, current), "scale-down limited by policy"
    bounded = min(max(stabilized, spec.min), spec.max)
    if bounded != stabilized:
        reason = "held at min" if bounded == spec.min else "held at max"

    keep = max(behavior.scale_up.stabilization_window, behavior.scale_down.stabilization_window)
    longest_period = max(
        (p.period for p in (*behavior.scale_up.policies, *behavior.scale_down.policies)),
        default=0.0,
    )
    recommendations = tuple(r for r in history.recommendations if r.at > now - keep)
    events = tuple(e for e in history.events if e.at > now - longest_period)
    if bounded != current:
        events = (*events, ScaleEvent(now, bounded - current))
    return Decision(
        replicas=bounded,
        recommendation=recommended,
        history=ScalerHistory((*recommendations, Recommendation(now, recommended)), events),
        reason=reason,
    )


def _stabilize(
    recommended: int,
    current: int,
    history: ScalerHistory,
    *,
    up: ScalingRules,
    down: ScalingRules,
    now: float,
) -> tuple[int, str]:
    up_floor = down_ceiling = recommended
    for past in history.recommendations:
        if past.at > now - up.stabilization_window:
            up_floor = min(up_floor, past.replicas)
        if past.at > now - down.stabilization_window:
            down_ceiling = max(down_ceiling, past.replicas)
    result, reason = current, "within tolerance"
    if result < up_floor:
        result, reason = up_floor, "scale up"
    if result > down_ceiling:
        result, reason = down_ceiling, "scale down"
    if result == current and recommended != current:
        reason = "held by stabilization window"
    return result, reason


def _scale_up_limit(
    current: int, events: tuple[ScaleEvent, ...], rules: ScalingRules, now: float
) -> int:
    if rules.select == "disabled" or not rules.policies:
        return current
    limits = []
    for policy in rules.policies:
        added = sum(e.change for e in events if e.change > 0 and e.at > now - policy.period)
        start = current - added
        if policy.type == "pods":
            limits.append(start + policy.value)
        else:
            limits.append(math.ceil(start * (1 + policy.value / 100)))
    return max(limits) if rules.select == "max" else min(limits)


def _scale_down_limit(
    current: int, events: tuple[ScaleEvent, ...], rules: ScalingRules, now: float
) -> int:
    if rules.select == "disabled" or not rules.policies:
        return current
    limits = []
    for policy in rules.policies:
        removed = -sum(e.change for e in events if e.change < 0 and e.at > now - policy.period)
        start = current + removed
        if policy.type == "pods":
            limits.append(start - policy.value)
        else:
            limits.append(math.floor(start * (1 - policy.value / 100)))
    # The most change going down is the *lowest* limit.
    return min(limits) if rules.select == "max" else max(limits)
