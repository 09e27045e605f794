"""The supervisor's decisions: desired and observed state in, actions out.

``reconcile(desired, observed, now, uniform=...)`` looks at every service and
answers what to do *now*: start missing replicas (after their dependencies are
ready), stop surplus ones, replace replicas of an old revision as a rolling
update bounded by ``max_surge`` and ``max_unavailable``, stop replicas whose
liveness or startup probe failed, SIGKILL those that outlived their grace
period, and turn each exit into a restart after an exponential backoff with
jitter, a retirement (``restart: never``/``on-failure``) or nothing (the stop
was asked for).

It is a pure function: time comes in as ``now``, randomness as ``uniform`` (a
callable returning a float in [0, 1)), and it never imports anything that does
I/O. Called twice on the same state it answers the same, so the shell may call
it as often as it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from dirigent.manifest.model import Backoff
from dirigent.runtime.model import (
    Action,
    CancelRestart,
    DesiredService,
    ForgetReplica,
    KillReplica,
    MarkCrashLoop,
    Observed,
    Phase,
    ReplicaState,
    ResetBackoff,
    RestartReplica,
    RetireReplica,
    SlotState,
    StartReplica,
    StopReason,
    StopReplica,
)

#: consecutive failures after which a slot shows as crash-looping
CRASH_LOOP_AFTER = 3

Uniform = Callable[[], float]


def backoff_delay(failures: int, backoff: Backoff, uniform: float) -> float:
    """Seconds to wait before restarting after the ``failures``-th consecutive failure.

    The first failure restarts at once (a crash after a healthy run should
    cost nothing); then ``initial``, doubling up to ``cap``, spread by
    ``±jitter`` so replicas that failed together do not restart together.
    """
    if failures <= 1:
        return 0.0
    base = min(backoff.cap, backoff.initial * 2.0 ** (failures - 2))
    spread = 1.0 + backoff.jitter * (2.0 * uniform - 1.0)
    return max(0.0, min(backoff.cap, base * spread))


def reconcile(
    desired: Mapping[str, DesiredService],
    observed: Observed,
    now: float,
    *,
    uniform: Uniform,
) -> list[Action]:
    replicas_by_service: dict[str, list[ReplicaState]] = {}
    for replica in observed.replicas:
        replicas_by_service.setdefault(replica.service, []).append(replica)
    slots_by_service: dict[str, dict[int, SlotState]] = {}
    for (service, index), slot in observed.slots.items():
        slots_by_service.setdefault(service, {})[index] = slot

    actions: list[Action] = []
    for name in sorted(set(desired) | set(replicas_by_service) | set(slots_by_service)):
        actions.extend(
            _service(
                name,
                desired=desired,
                replicas_by_service=replicas_by_service,
                slots=slots_by_service.get(name, {}),
                now=now,
                uniform=uniform,
            )
        )
    return actions


def next_deadline(observed: Observed) -> float | None:
    """The earliest time at which reconcile would answer differently without a new event."""
    times = [slot.not_before for slot in observed.slots.values() if slot.not_before is not None]
    times.extend(
        replica.stop_requested_at + replica.stop.grace_period
        for replica in observed.replicas
        if replica.phase is Phase.STOPPING
        and replica.stop_requested_at is not None
        and not replica.killed
    )
    return min(times, default=None)


def _service(
    name: str,
    *,
    desired: Mapping[str, DesiredService],
    replicas_by_service: Mapping[str, list[ReplicaState]],
    slots: dict[int, SlotState],
    now: float,
    uniform: Uniform,
) -> list[Action]:
    want = desired.get(name)
    replicas = replicas_by_service.get(name, [])
    target = want.replicas if want else 0
    actions: list[Action] = []

    slots = dict(slots)
    forgotten: set[int] = set()
    for replica in replicas:
        if replica.phase is Phase.EXITED:
            decided = list(_on_exit(replica, want, slots.get(replica.slot), now, uniform))
            actions.extend(decided)
            # Count the exit's outcome in this same pass, so a restart at once
            # happens in its own slot rather than in a new one.
            slot = slots.get(replica.slot) or SlotState(service=name, slot=replica.slot)
            match decided[0]:
                case RestartReplica(not_before=not_before, failures=failures):
                    slots[replica.slot] = replace(slot, not_before=not_before, failures=failures)
                case RetireReplica():
                    slots[replica.slot] = replace(slot, done=True)
                case _:
                    forgotten.add(replica.slot)
        elif replica.phase is Phase.STOPPING:
            deadline = (replica.stop_requested_at or now) + replica.stop.grace_period
            if now >= deadline and not replica.killed:
                actions.append(KillReplica(name, replica.slot, replica.incarnation))

    live = [r for r in replicas if r.live]
    for replica in live:
        if replica.unhealthy is not None:
            actions.append(_stop(replica, replica.unhealthy))
        elif want and _healthy_long_enough(replica, want, slots, now):
            actions.append(ResetBackoff(name, replica.slot))
    # Replicas stopped for failing a probe restart in their own slot once they
    # exit; until then they count as present so no extra slot is started.
    restarting = sum(
        1
        for r in replicas
        if (r.live and r.unhealthy is not None)
        or (r.phase is Phase.STOPPING and r.stop_reason is not None and r.stop_reason.is_failure)
    )
    live = [r for r in live if r.unhealthy is None]

    if target == 0 and _dependents_still_running(name, desired, replicas_by_service):
        # Stop in reverse dependency order: a dependency outlives its dependents.
        return actions

    occupied = {r.slot for r in replicas if r.phase is not Phase.EXITED} | forgotten
    waiting = sorted(
        (s for s in slots.values() if s.not_before is not None and s.slot not in occupied),
        key=lambda s: s.slot,
    )
    done = [s for s in slots.values() if s.done and s.slot not in occupied]
    revision = want.revision if want else ""
    new = [r for r in live if r.revision == revision]
    old = [r for r in live if r.revision != revision]
    have = len(new) + len(waiting) + len(done) + restarting

    if have > target:
        surplus = have - target
        for slot in reversed(waiting):
            if surplus == 0:
                break
            actions.append(CancelRestart(name, slot.slot))
            waiting.remove(slot)
            surplus -= 1
        for replica in sorted(new, key=_stop_order)[:surplus]:
            actions.append(_stop(replica, StopReason.SCALE))
            new.remove(replica)

    dependencies_ready = want is not None and all(
        _ready_enough(dependency, desired, replicas_by_service)
        for dependency in want.spec.depends_on
    )
    if want and dependencies_ready:
        actions.extend(
            StartReplica(name, slot.slot, slot.incarnations, revision)
            for slot in waiting
            if slot.not_before is not None and slot.not_before <= now
        )
        surge = want.spec.rollout.max_surge.resolve(target, round_up=True)
        budget = target + surge - (len(live) + len(waiting) + len(done) + restarting)
        missing = min(target - have, budget)
        taken = occupied | {s.slot for s in waiting} | {s.slot for s in done}
        for index in _vacant(taken, missing):
            incarnations = slots[index].incarnations if index in slots else 0
            actions.append(StartReplica(name, index, incarnations, revision))

    # Old replicas go as availability allows: not-ready ones at once, ready ones
    # only while at least ``target - max_unavailable`` replicas stay ready.
    unavailable = want.spec.rollout.max_unavailable.resolve(target, round_up=False) if want else 0
    available = sum(1 for r in old + new if r.ready)
    reason = StopReason.ROLLOUT if want else StopReason.SCALE
    for replica in sorted(old, key=_stop_order):
        if not replica.ready:
            actions.append(_stop(replica, reason))
        elif available - 1 >= target - unavailable:
            actions.append(_stop(replica, reason))
            available -= 1
    return actions


def _on_exit(
    replica: ReplicaState,
    want: DesiredService | None,
    slot: SlotState | None,
    now: float,
    uniform: Uniform,
) -> Iterable[Action]:
    name, index, incarnation = replica.key
    asked = replica.stop_reason is not None and not replica.stop_reason.is_failure
    if asked or want is None:
        return [ForgetReplica(name, index, incarnation)]
    mode = want.spec.restart.mode
    failed = replica.exit_code != 0 or replica.stop_reason is not None
    if mode == "never" or (mode == "on-failure" and not failed):
        return [RetireReplica(name, index, incarnation, replica.exit_code)]
    backoff = want.spec.restart.backoff
    previous = slot.failures if slot else 0
    if replica.ready_since is not None and now - replica.ready_since >= backoff.reset_after:
        previous = 0  # it ran healthy long enough: this is a fresh failure
    failures = previous + 1
    not_before = now + backoff_delay(failures, backoff, uniform())
    actions: list[Action] = [
        RestartReplica(name, index, incarnation, not_before, failures, replica.exit_code)
    ]
    if failures >= CRASH_LOOP_AFTER:
        actions.append(MarkCrashLoop(name, index, failures, not_before))
    return actions


def _stop(replica: ReplicaState, reason: StopReason) -> StopReplica:
    return StopReplica(
        replica.service, replica.slot, replica.incarnation, replica.stop.signal, reason
    )


def _stop_order(replica: ReplicaState) -> tuple[bool, int]:
    # Not-ready replicas first (stopping them costs no capacity), then the highest slot.
    return (replica.ready, -replica.slot)


def _vacant(taken: set[int], count: int) -> list[int]:
    found: list[int] = []
    index = 0
    while len(found) < count:
        if index not in taken:
            found.append(index)
        index += 1
    return found


def _healthy_long_enough(
    replica: ReplicaState, want: DesiredService, slots: Mapping[int, SlotState], now: float
) -> bool:
    slot = slots.get(replica.slot)
    if slot is None or (slot.failures == 0 and not slot.crash_loop):
        return False
    since = replica.ready_since
    return since is not None and now - since >= want.spec.restart.backoff.reset_after


def _ready_enough(
    name: str,
    desired: Mapping[str, DesiredService],
    replicas_by_service: Mapping[str, list[ReplicaState]],
) -> bool:
    want = desired.get(name)
    if want is not None and want.replicas == 0:
        return True
    return any(r.live and r.ready for r in replicas_by_service.get(name, []))


def _dependents_still_running(
    name: str,
    desired: Mapping[str, DesiredService],
    replicas_by_service: Mapping[str, list[ReplicaState]],
) -> bool:
    for other, want in desired.items():
        stopping = name in want.spec.depends_on and want.replicas == 0
        if stopping and any(
            r.phase is not Phase.EXITED for r in replicas_by_service.get(other, [])
        ):
            return True
    return False
