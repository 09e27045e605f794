"""Read a service's ``autoscale`` section, shaped after Kubernetes' ``autoscaling/v2``.

```yaml
autoscale:
  min: 1
  max: 10
  metrics: {cpu: 70, rps: 100}          # per-replica targets
  behavior:
    scale_down:
      stabilization_window: 60
      select: max
      policies: [{type: percent, value: 50, period: 15}]
```

Omitted ``behavior`` rules take Kubernetes' defaults. This module must never
raise on a user's mistake: problems go to the :class:`Reader`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import cast

from yaml.nodes import Node

from dirigent.manifest.model import (
    METRIC_NAMES,
    Autoscale,
    Behavior,
    MetricName,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    default_scale_down,
    default_scale_up,
)
from dirigent.manifest.reader import Reader, line_of

AUTOSCALE_KEYS = ("min", "max", "metrics", "behavior", "tolerance")
RULE_KEYS = ("stabilization_window", "select", "policies")
POLICY_KEYS = ("type", "value", "period")


def read_autoscale(reader: Reader, node: Node, path: str) -> Autoscale | None:
    fields = reader.fields(node, path, AUTOSCALE_KEYS)
    if fields is None:
        return None
    bounds: dict[str, int | None] = {}
    for key in ("min", "max"):
        bound_node = fields.get(key)
        if bound_node is None:
            reader.error(fields.line, fields.at(key), "required key is missing")
            bounds[key] = None
        else:
            bounds[key] = reader.integer(bound_node, fields.at(key), minimum=1)
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and high < low:
        reader.error(line_of(fields.nodes["max"]), fields.at("max"), f"must be >= min ({low})")

    targets: dict[MetricName, float] = {}
    metrics_node = fields.get("metrics")
    if metrics_node is None:
        reader.error(fields.line, fields.at("metrics"), "required key is missing")
    else:
        metrics = reader.fields(metrics_node, fields.at("metrics"), METRIC_NAMES)
        if metrics is not None:
            if not metrics.nodes and not reader.problems:
                reader.error(metrics.line, metrics.path, "expected at least one metric")
            for name, target_node in metrics.nodes.items():
                target = reader.number(target_node, metrics.at(name), positive=True)
                if target is not None:
                    targets[name] = target  # type: ignore[index]  # a METRIC_NAMES key

    tolerance = 0.1
    if (tolerance_node := fields.get("tolerance")) is not None:
        value = reader.number(tolerance_node, fields.at("tolerance"), positive=False)
        if value is not None and value >= 1:
            reader.error(line_of(tolerance_node), fields.at("tolerance"), "expected a fraction < 1")
        tolerance = value if value is not None else tolerance

    behavior = Behavior()
    if (behavior_node := fields.get("behavior")) is not None:
        behavior = _behavior(reader, behavior_node, fields.at("behavior"))

    if low is None or high is None:
        return None
    return Autoscale(
        min=low,
        max=high,
        targets=MappingProxyType(targets),
        behavior=behavior,
        tolerance=tolerance,
    )


def _behavior(reader: Reader, node: Node, path: str) -> Behavior:
    fields = reader.fields(node, path, ("scale_up", "scale_down"))
    if fields is None:
        return Behavior()
    up, down = default_scale_up(), default_scale_down()
    if (up_node := fields.get("scale_up")) is not None:
        up = _rules(reader, up_node, fields.at("scale_up"), up)
    if (down_node := fields.get("scale_down")) is not None:
        down = _rules(reader, down_node, fields.at("scale_down"), down)
    return Behavior(scale_up=up, scale_down=down)


def _rules(reader: Reader, node: Node, path: str, default: ScalingRules) -> ScalingRules:
    fields = reader.fields(node, path, RULE_KEYS)
    if fields is None:
        return default
    window = default.stabilization_window
    if (window_node := fields.get("stabilization_window")) is not None:
        value = reader.number(window_node, fields.at("stabilization_window"), positive=False)
        if value is not None and value > 3600:
            reader.error(
                line_of(window_node),
                fields.at("stabilization_window"),
                "expected at most 3600 seconds",
            )
        window = value if value is not None else window
    select = default.select
    if (select_node := fields.get("select")) is not None:
        chosen = reader.choice(select_node, fields.at("select"), ("max", "min", "disabled"))
        select = cast(SelectPolicy, chosen or select)
    policies = default.policies
    if (policies_node := fields.get("policies")) is not None:
        read = [
            _policy(reader, item, item_path)
            for item_path, item in reader.items(policies_node, fields.at("policies")) or ()
        ]
        policies = tuple(policy for policy in read if policy is not None)
        if not read and select != "disabled":
            reader.error(
                line_of(policies_node), fields.at("policies"), "expected at least one policy"
            )
    return ScalingRules(stabilization_window=window, select=select, policies=policies)


def _policy(reader: Reader, node: Node, path: str) -> ScalingPolicy | None:
    fields = reader.fields(node, path, POLICY_KEYS)
    if fields is None:
        return None
    values: dict[str, object] = {}
    for key in POLICY_KEYS:
        if fields.get(key) is None:
            reader.error(fields.line, fields.at(key), "required key is missing")
    if (type_node := fields.get("type")) is not None:
        values["type"] = reader.choice(type_node, fields.at("type"), ("pods", "percent"))
    if (value_node := fields.get("value")) is not None:
        values["value"] = reader.integer(value_node, fields.at("value"), minimum=1)
    if (period_node := fields.get("period")) is not None:
        period = reader.number(period_node, fields.at("period"), positive=True)
        if period is not None and period > 1800:
            reader.error(line_of(period_node), fields.at("period"), "expected at most 1800 seconds")
        values["period"] = period
    if len(values) < 3 or None in values.values():
        return None
    return ScalingPolicy(type=values["type"], value=values["value"], period=values["period"])  # type: ignore[arg-type]
