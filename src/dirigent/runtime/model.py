"""Desired state, observed state and the actions that move one toward the other.

Everything here is a frozen dataclass. The supervisor shell keeps the observed
state (it is the only one that sees processes), asks
:func:`dirigent.runtime.reconcile.reconcile` what to do, carries the actions
out and records their effect: each action documents what the shell must change
in the observed state when it applies it, so that the next reconcile does not
ask again.

A *slot* is a stable position of a service (``web`` slot 0, 1, ...): it keeps
its port and its restart history across the replicas (incarnations) that run
in it. This module must never import anything that does I/O, reads a clock or
draws random numbers.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from dirigent.manifest.model import Service, StopPolicy


def revision_of(service: Service) -> str:
    """A fingerprint of everything that shapes a replica's process.

    Changing it rolls the service out; changing only ``replicas``,
    ``autoscale``, ``rollout``, ``restart`` or ``depends_on`` does not.
    """
    shaping = (
        service.command,
        service.cwd,
        sorted(service.env.items()),
        service.env_file,
        service.port,
        service.probes,
        service.stop,
        service.resources,
    )
    return hashlib.sha256(repr(shaping).encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class DesiredService:
    """What should run: the spec, at ``replicas`` copies (after scaling decisions)."""

    spec: Service
    replicas: int
    revision: str = ""

    def __post_init__(self) -> None:
        if not self.revision:
            object.__setattr__(self, "revision", revision_of(self.spec))


class Phase(enum.Enum):
    STARTING = "starting"  # process alive, never ready yet
    RUNNING = "running"  # process alive and has been ready (or has no readiness probe)
    STOPPING = "stopping"  # stop signal sent, waiting for the exit
    EXITED = "exited"  # exit seen; reconcile decides restart, retire or forget


class StopReason(enum.Enum):
    SCALE = "scale"  # fewer replicas wanted
    ROLLOUT = "rollout"  # replaced by a replica of the new revision
    LIVENESS = "liveness"  # liveness probe failed past its threshold
    STARTUP = "startup"  # startup probe failed past its threshold

    @property
    def is_failure(self) -> bool:
        return self in (StopReason.LIVENESS, StopReason.STARTUP)


ReplicaKey: TypeAlias = tuple[str, int, int]  # service, slot, incarnation


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaState:
    """One process incarnation in a slot, as the shell last saw it."""

    service: str
    slot: int
    incarnation: int
    revision: str
    phase: Phase
    started_at: float
    stop: StopPolicy = field(default_factory=StopPolicy)
    ready: bool = False
    ready_since: float | None = None
    #: set by the shell when a liveness or startup probe crossed its failure threshold
    unhealthy: StopReason | None = None
    stop_requested_at: float | None = None
    stop_reason: StopReason | None = None
    killed: bool = False
    exit_code: int | None = None

    @property
    def key(self) -> ReplicaKey:
        return (self.service, self.slot, self.incarnation)

    @property
    def live(self) -> bool:
        return self.phase in (Phase.STARTING, Phase.RUNNING)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotState:
    """A slot's history: how many replicas it ran and how they ended."""

    service: str
    slot: int
    incarnations: int = 0
    #: consecutive unrequested exits since the last healthy run
    failures: int = 0
    restarts: int = 0
    #: set while the slot waits out a restart backoff
    not_before: float | None = None
    crash_loop: bool = False
    #: the last replica exited and the restart policy says to leave it so
    done: bool = False
    last_exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class Observed:
    replicas: tuple[ReplicaState, ...] = ()
    slots: Mapping[tuple[str, int], SlotState] = field(default_factory=lambda: MappingProxyType({}))


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class StartReplica:
    """Spawn incarnation ``incarnation`` in ``slot``; the shell creates the slot if new,
    sets ``incarnations = incarnation + 1``, clears ``not_before`` and adds a STARTING replica."""

    service: str
    slot: int
    incarnation: int
    revision: str


@dataclass(frozen=True, slots=True)
class StopReplica:
    """Send ``signal`` to the replica's process group; phase becomes STOPPING."""

    service: str
    slot: int
    incarnation: int
    signal: str
    reason: StopReason


@dataclass(frozen=True, slots=True)
class KillReplica:
    """The grace period ran out: SIGKILL the process group; set ``killed``."""

    service: str
    slot: int
    incarnation: int


@dataclass(frozen=True, slots=True)
class RestartReplica:
    """Drop the exited replica; the slot waits until ``not_before`` then starts again.

    The shell sets the slot's ``failures``, ``not_before``, ``last_exit_code`` and
    adds one to ``restarts``.
    """

    service: str
    slot: int
    incarnation: int
    not_before: float
    failures: int
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class MarkCrashLoop:
    """The slot keeps failing; show it as crash-looping until it stays healthy."""

    service: str
    slot: int
    failures: int
    not_before: float


@dataclass(frozen=True, slots=True)
class ForgetReplica:
    """Drop a replica that exited because it was asked to; its slot becomes vacant."""

    service: str
    slot: int
    incarnation: int


@dataclass(frozen=True, slots=True)
class RetireReplica:
    """Drop an exited replica and mark its slot ``done``: the restart policy says stay down."""

    service: str
    slot: int
    incarnation: int
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class CancelRestart:
    """A slot waiting out its backoff is no longer wanted: clear ``not_before``."""

    service: str
    slot: int


@dataclass(frozen=True, slots=True)
class ResetBackoff:
    """The slot's replica stayed ready long enough: clear ``failures`` and ``crash_loop``."""

    service: str
    slot: int


Action: TypeAlias = (
    StartReplica
    | StopReplica
    | KillReplica
    | RestartReplica
    | MarkCrashLoop
    | ForgetReplica
    | RetireReplica
    | CancelRestart
    | ResetBackoff
)
