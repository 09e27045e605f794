"""How observed state changes: when an action is applied, and when the shell sees something.

:func:`apply` records the bookkeeping effect of an action (the shell does the
process work besides); the ``record_*`` functions fold what the shell saw (an
exit, a readiness change, a failed probe) into the state. Together with
:func:`~dirigent.runtime.reconcile.reconcile` they let tests drive a whole
supervisor with a fake clock and no process.

Pure: no I/O, no clock, no randomness; every function returns a new state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

from dirigent.manifest.model import StopPolicy
from dirigent.runtime.model import (
    Action,
    CancelRestart,
    ForgetReplica,
    KillReplica,
    MarkCrashLoop,
    Observed,
    Phase,
    ReplicaKey,
    ReplicaState,
    ResetBackoff,
    RestartReplica,
    RetireReplica,
    SlotState,
    StartReplica,
    StopReason,
    StopReplica,
)

_Change = Callable[[ReplicaState], ReplicaState]


def apply(
    observed: Observed, action: Action, now: float, *, stop: StopPolicy | None = None
) -> Observed:
    """The state after ``action`` was carried out at ``now``.

    ``stop`` is the stop policy of the spec a started replica runs (needed for
    :class:`StartReplica` only).
    """
    slots = dict(observed.slots)
    replicas = list(observed.replicas)
    match action:
        case StartReplica(service, index, incarnation, revision):
            slot = slots.get((service, index)) or SlotState(service=service, slot=index)
            slots[(service, index)] = replace(
                slot, incarnations=incarnation + 1, not_before=None, done=False
            )
            replicas.append(
                ReplicaState(
                    service=service,
                    slot=index,
                    incarnation=incarnation,
                    revision=revision,
                    phase=Phase.STARTING,
                    started_at=now,
                    stop=stop or StopPolicy(),
                )
            )
        case StopReplica(service, index, incarnation, _signal, reason):
            replicas = _update(
                replicas,
                (service, index, incarnation),
                lambda r: replace(
                    r,
                    phase=Phase.STOPPING if r.live else r.phase,
                    stop_requested_at=now,
                    stop_reason=reason,
                    ready=False,
                ),
            )
        case KillReplica(service, index, incarnation):
            replicas = _update(
                replicas, (service, index, incarnation), lambda r: replace(r, killed=True)
            )
        case RestartReplica(service, index, incarnation, not_before, failures, exit_code):
            replicas = _drop(replicas, (service, index, incarnation))
            slot = slots.get((service, index)) or SlotState(service=service, slot=index)
            slots[(service, index)] = replace(
                slot,
                failures=failures,
                not_before=not_before,
                restarts=slot.restarts + 1,
                last_exit_code=exit_code,
            )
        case MarkCrashLoop(service, index, _failures, _not_before):
            if (service, index) in slots:
                slots[(service, index)] = replace(slots[(service, index)], crash_loop=True)
        case ForgetReplica(service, index, incarnation):
            replicas = _drop(replicas, (service, index, incarnation))
        case RetireReplica(service, index, incarnation, exit_code):
            replicas = _drop(replicas, (service, index, incarnation))
            slot = slots.get((service, index)) or SlotState(service=service, slot=index)
            slots[(service, index)] = replace(slot, done=True, last_exit_code=exit_code)
        case CancelRestart(service, index):
            if (service, index) in slots:
                slots[(service, index)] = replace(slots[(service, index)], not_before=None)
        case ResetBackoff(service, index):
            if (service, index) in slots:
                slots[(service, index)] = replace(
                    slots[(service, index)], failures=0, crash_loop=False
                )
    return Observed(tuple(replicas), MappingProxyType(slots))


def record_exit(observed: Observed, key: ReplicaKey, exit_code: int | None) -> Observed:
    """The process of ``key`` exited (``exit_code`` negative for a signal, as Popen reports)."""
    return _with(
        observed, key, lambda r: replace(r, phase=Phase.EXITED, exit_code=exit_code, ready=False)
    )


def record_ready(observed: Observed, key: ReplicaKey, ready: bool, now: float) -> Observed:
    def change(replica: ReplicaState) -> ReplicaState:
        if not replica.live or replica.ready == ready:
            return replica
        if ready:
            return replace(replica, ready=True, ready_since=now, phase=Phase.RUNNING)
        return replace(replica, ready=False)

    return _with(observed, key, change)


def record_unhealthy(observed: Observed, key: ReplicaKey, reason: StopReason) -> Observed:
    return _with(observed, key, lambda r: replace(r, unhealthy=reason) if r.live else r)


def find(observed: Observed, key: ReplicaKey) -> ReplicaState | None:
    return next((r for r in observed.replicas if r.key == key), None)


def _with(observed: Observed, key: ReplicaKey, change: _Change) -> Observed:
    return Observed(tuple(_update(list(observed.replicas), key, change)), observed.slots)


def _update(replicas: list[ReplicaState], key: ReplicaKey, change: _Change) -> list[ReplicaState]:
    return [change(r) if r.key == key else r for r in replicas]


def _drop(replicas: list[ReplicaState], key: ReplicaKey) -> list[ReplicaState]:
    return [r for r in replicas if r.key != key]
