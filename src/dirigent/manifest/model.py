"""The loaded form of ``dirigent.yaml``: frozen dataclasses and nothing else.

The loader (:mod:`dirigent.manifest.loader`) is the only producer of these
objects and guarantees what the types cannot say: names are unique, every
``depends_on`` names a service of the same manifest and the graph has no
cycle, ``autoscale.min <= autoscale.max``, thresholds are positive. Durations
are seconds as ``float`` (fractions allowed); sizes are bytes; CPU is cores.

This module must never read files, the environment or a clock: a manifest is
data, and the runtime decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

ProbeKind: TypeAlias = Literal["http", "tcp", "exec"]
RestartMode: TypeAlias = Literal["always", "on-failure", "never"]
MetricName: TypeAlias = Literal["cpu", "rps", "p95_latency", "inflight"]
SelectPolicy: TypeAlias = Literal["max", "min", "disabled"]
ScalingPolicyType: TypeAlias = Literal["pods", "percent"]

METRIC_NAMES: tuple[MetricName, ...] = ("cpu", "rps", "p95_latency", "inflight")


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One health check; exactly one of ``http`` (a path), ``tcp`` or ``exec`` applies."""

    kind: ProbeKind
    path: str = "/"
    command: tuple[str, ...] = ()
    period: float = 1.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Probes:
    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delays between restarts of one replica slot.

    The first restart after a healthy run is immediate; the n-th consecutive
    failure waits ``initial * 2**(n-2)`` seconds, at most ``cap``, spread by
    ``±jitter`` (a fraction). A replica that stays ready ``reset_after``
    seconds clears the count.
    """

    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0
    jitter: float = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    mode: RestartMode = "always"
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class StopPolicy:
    signal: str = "SIGTERM"
    grace_period: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    memory_bytes: int | None = None
    cpu: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingPolicy:
    """At most ``value`` pods (or percent of the replicas) per ``period`` seconds."""

    type: ScalingPolicyType
    value: int
    period: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingRules:
    stabilization_window: float
    select: SelectPolicy = "max"
    policies: tuple[ScalingPolicy, ...] = ()


def default_scale_up() -> ScalingRules:
    # Kubernetes' defaults for autoscaling/v2: no window, +4 pods or +100% per 15 s.
    return ScalingRules(
        stabilization_window=0.0,
        select="max",
        policies=(
            ScalingPolicy(type="pods", value=4, period=15.0),
            ScalingPolicy(type="percent", value=100, period=15.0),
        ),
    )


def default_scale_down() -> ScalingRules:
    # Kubernetes' defaults: a five-minute window, then anything down to min at once.
    return ScalingRules(
        stabilization_window=300.0,
        select="max",
        policies=(ScalingPolicy(type="percent", value=100, period=15.0),),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Behavior:
    scale_up: ScalingRules = field(default_factory=default_scale_up)
    scale_down: ScalingRules = field(default_factory=default_scale_down)


@dataclass(frozen=True, slots=True, kw_only=True)
class Autoscale:
    """HPA-style scaling; ``targets`` maps a metric to its per-replica target.

    ``cpu`` is percent of one core, ``rps`` requests per second, ``p95_latency``
    seconds, ``inflight`` concurrent requests.
    """

    min: int
    max: int
    targets: Mapping[MetricName, float]
    behavior: Behavior = field(default_factory=Behavior)
    tolerance: float = 0.1


@dataclass(frozen=True, slots=True)
class Amount:
    """A count or a percentage of the desired replicas (``max_surge: 25%``)."""

    value: int
    percent: bool = False

    def resolve(self, replicas: int, *, round_up: bool) -> int:
        if not self.percent:
            return self.value
        scaled = replicas * self.value
        return -(-scaled // 100) if round_up else scaled // 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    max_surge: Amount = Amount(25, percent=True)
    max_unavailable: Amount = Amount(25, percent=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """One service: how to run a replica of it and how many to keep."""

    name: str
    command: tuple[str, ...]
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=_empty)
    env_file: str | None = None
    #: a fixed base port (slot ``i`` gets ``port + i``), or None for one assigned per slot
    port: int | None = None
    replicas: int = 1
    probes: Probes = field(default_factory=Probes)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    stop: StopPolicy = field(default_factory=StopPolicy)
    resources: Resources = field(default_factory=Resources)
    autoscale: Autoscale | None = None
    depends_on: tuple[str, ...] = ()
    rollout: Rollout = field(default_factory=Rollout)


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A Python callable tasks may call, as ``module:function``."""

    module: str
    function: str

    def __str__(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    app: str
    services: Mapping[str, Service]
    workflows: tuple[str, ...] = ()
    functions: Mapping[str, FunctionRef] = field(default_factory=lambda: MappingProxyType({}))
    #: the file it came from, for messages and to resolve relative paths
    source: str = "dirigent.yaml"
    #: sections parsed by extensions (the mesh's, later), by top-level key
    extensions: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
