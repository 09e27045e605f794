"""The reconcile core decides starts, stops, restarts and rollouts from state alone."""

from __future__ import annotations

from dataclasses import replace

from dirigent.manifest.model import Amount, Backoff, RestartPolicy, Rollout, Service, StopPolicy
from dirigent.runtime.model import (
    Action,
    CancelRestart,
    DesiredService,
    ForgetReplica,
    KillReplica,
    MarkCrashLoop,
    Observed,
    Phase,
    ResetBackoff,
    RestartReplica,
    RetireReplica,
    StartReplica,
    StopReason,
    StopReplica,
)
from dirigent.runtime.observed import apply, record_exit, record_ready, record_unhealthy
from dirigent.runtime.reconcile import backoff_delay, next_deadline, reconcile

BACKOFF = Backoff(initial=1.0, cap=8.0, reset_after=30.0, jitter=0.0)


def service(name: str = "web", **changes: object) -> Service:
    base = Service(
        name=name,
        command=("./web",),
        restart=RestartPolicy(backoff=BACKOFF),
        stop=StopPolicy(grace_period=5.0),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def want(*services: Service, replicas: int | None = None) -> dict[str, DesiredService]:
    return {
        s.name: DesiredService(s, s.replicas if replicas is None else replicas) for s in services
    }


def step(
    desired: dict[str, DesiredService], observed: Observed, now: float, *, uniform: float = 0.5
) -> tuple[list[Action], Observed]:
    actions = reconcile(desired, observed, now, uniform=lambda: uniform)
    for action in actions:
        stop = desired[action.service].spec.stop if isinstance(action, StartReplica) else None
        observed = apply(observed, action, now, stop=stop)
    return actions, observed


def make_all_ready(observed: Observed, now: float) -> Observed:
    for replica in observed.replicas:
        if replica.live and not replica.ready:
            observed = record_ready(observed, replica.key, True, now)
    return observed


def exit_all_stopping(observed: Observed) -> Observed:
    for replica in observed.replicas:
        if replica.phase is Phase.STOPPING:
            observed = record_exit(observed, replica.key, -15)
    return observed


def running(desired: dict[str, DesiredService], now: float = 0.0) -> Observed:
    _, observed = step(desired, Observed(), now)
    return make_all_ready(observed, now)


def test_starts_the_desired_replicas_in_the_lowest_slots() -> None:
    actions, _ = step(want(service(replicas=3)), Observed(), 0.0)
    revision = want(service())["web"].revision
    assert actions == [StartReplica("web", i, 0, revision) for i in range(3)]


def test_reconcile_asks_nothing_more_once_the_state_matches() -> None:
    desired = want(service(replicas=2))
    observed = running(desired)
    assert reconcile(desired, observed, 1.0, uniform=lambda: 0.5) == []


def test_first_crash_restarts_the_slot_at_once_with_a_new_incarnation() -> None:
    desired = want(service())
    observed = record_exit(running(desired), ("web", 0, 0), 1)
    actions, observed = step(desired, observed, 10.0)
    assert actions == [
        RestartReplica("web", 0, 0, 10.0, 1, 1),
        StartReplica("web", 0, 1, desired["web"].revision),
    ]
    assert observed.slots[("web", 0)].restarts == 1


def test_consecutive_failures_double_the_delay_up_to_the_cap() -> None:
    assert [backoff_delay(n, BACKOFF, 0.5) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_jitter_spreads_the_delay_both_ways() -> None:
    jittery = Backoff(initial=2.0, cap=60.0, jitter=0.5)
    assert backoff_delay(2, jittery, 0.0) == 1.0
    assert backoff_delay(2, jittery, 0.999999) < 3.0
    assert backoff_delay(2, jittery, 0.999999) > 2.9


def test_a_crash_looping_slot_waits_and_is_marked() -> None:
    desired = want(service())
    observed = running(desired)
    now = 0.0
    for incarnation in range(3):
        observed = record_exit(observed, ("web", 0, incarnation), 2)
        now += 0.1
        actions, observed = step(desired, observed, now)
        if incarnation < 2:
            now = next_deadline(observed) or now
            _, observed = step(desired, observed, now)
    assert RestartReplica("web", 0, 2, now + 2.0, 3, 2) in actions
    assert MarkCrashLoop("web", 0, 3, now + 2.0) in actions
    assert not any(isinstance(a, StartReplica) for a in actions)
    assert observed.slots[("web", 0)].crash_loop
    assert next_deadline(observed) == now + 2.0
    actions, observed = step(desired, observed, now + 2.0)
    assert actions == [StartReplica("web", 0, 3, desired["web"].revision)]


def test_staying_ready_past_reset_after_clears_the_backoff() -> None:
    desired = want(service())
    observed = running(desired)
    for incarnation in range(3):
        observed = record_exit(observed, ("web", 0, incarnation), 2)
        _, observed = step(desired, observed, 1.0 + incarnation * 10)
        _, observed = step(desired, observed, 1.0 + incarnation * 10 + 8)
    observed = make_all_ready(observed, 40.0)
    actions, observed = step(desired, observed, 70.0)
    assert actions == [ResetBackoff("web", 0)]
    assert observed.slots[("web", 0)].failures == 0
    assert not observed.slots[("web", 0)].crash_loop


def test_restart_never_retires_the_slot() -> None:
    desired = want(service(restart=RestartPolicy(mode="never")))
    observed = record_exit(running(desired), ("web", 0, 0), 1)
    actions, observed = step(desired, observed, 1.0)
    assert actions == [RetireReplica("web", 0, 0, 1)]
    assert reconcile(desired, observed, 2.0, uniform=lambda: 0.5) == []


def test_on_failure_restarts_a_failure_but_not_a_clean_exit() -> None:
    desired = want(service(restart=RestartPolicy(mode="on-failure", backoff=BACKOFF), replicas=2))
    observed = running(desired)
    observed = record_exit(observed, ("web", 0, 0), 0)
    observed = record_exit(observed, ("web", 1, 0), 3)
    actions, _ = step(desired, observed, 1.0)
    assert RetireReplica("web", 0, 0, 0) in actions
    assert RestartReplica("web", 1, 0, 1.0, 1, 3) in actions


def test_a_failed_liveness_probe_stops_the_replica_and_counts_as_a_failure() -> None:
    desired = want(service())
    observed = record_unhealthy(running(desired), ("web", 0, 0), StopReason.LIVENESS)
    actions, observed = step(desired, observed, 1.0)
    assert actions == [StopReplica("web", 0, 0, "SIGTERM", StopReason.LIVENESS)]
    observed = record_exit(observed, ("web", 0, 0), -15)
    actions, observed = step(desired, observed, 1.5)
    assert isinstance(actions[0], RestartReplica)
    assert observed.slots[("web", 0)].failures == 1


def test_a_replica_outliving_its_grace_period_is_killed_once() -> None:
    desired = want(service())
    observed = running(desired)
    _, observed = step(want(service(), replicas=0), observed, 1.0)
    assert reconcile(want(service(), replicas=0), observed, 5.9, uniform=lambda: 0.5) == []
    actions, observed = step(want(service(), replicas=0), observed, 6.0)
    assert actions == [KillReplica("web", 0, 0)]
    assert reconcile(want(service(), replicas=0), observed, 7.0, uniform=lambda: 0.5) == []


def test_a_requested_stop_is_forgotten_not_restarted() -> None:
    desired = want(service(), replicas=0)
    _, observed = step(desired, running(want(service())), 1.0)
    actions, observed = step(desired, exit_all_stopping(observed), 2.0)
    assert actions == [ForgetReplica("web", 0, 0)]
    assert observed.replicas == ()


def test_scaling_down_stops_not_ready_replicas_first_then_the_highest_slots() -> None:
    desired = want(service(replicas=4))
    observed = running(desired)
    observed = record_ready(observed, ("web", 1, 0), False, 1.0)
    actions, _ = step(want(service(), replicas=2), observed, 2.0)
    assert actions == [
        StopReplica("web", 1, 0, "SIGTERM", StopReason.SCALE),
        StopReplica("web", 3, 0, "SIGTERM", StopReason.SCALE),
    ]


def test_scaling_down_cancels_a_pending_restart_before_stopping_anything() -> None:
    desired = want(service(replicas=2))
    observed = running(desired)
    observed = record_exit(observed, ("web", 1, 0), 1)
    _, observed = step(desired, observed, 1.0)  # restarts at once (first failure)
    observed = record_exit(observed, ("web", 1, 1), 1)
    _, observed = step(desired, observed, 1.1)  # second failure: waits 1 s
    actions, _ = step(want(service(), replicas=1), observed, 1.2)
    assert actions == [CancelRestart("web", 1)]


def test_a_service_starts_only_after_its_dependencies_are_ready() -> None:
    desired = want(service("db"), service("api", depends_on=("db",)))
    actions, observed = step(desired, Observed(), 0.0)
    assert [a.service for a in actions] == ["db"]
    assert reconcile(desired, observed, 1.0, uniform=lambda: 0.5) == []
    observed = make_all_ready(observed, 1.0)
    actions, _ = step(desired, observed, 1.0)
    assert [a.service for a in actions] == ["api"]


def test_on_shutdown_a_dependency_outlives_its_dependents() -> None:
    desired = want(service("db"), service("api", depends_on=("db",)))
    observed = running(desired)
    _, observed = step(desired, observed, 0.0)
    observed = make_all_ready(observed, 0.0)
    stop_all = want(service("db"), service("api", depends_on=("db",)), replicas=0)
    actions, observed = step(stop_all, observed, 1.0)
    assert [(a.service, type(a)) for a in actions] == [("api", StopReplica)]
    actions, observed = step(stop_all, exit_all_stopping(observed), 2.0)
    assert [(a.service, type(a)) for a in actions] == [("api", ForgetReplica), ("db", StopReplica)]


def rollout_until_done(
    old: dict[str, DesiredService], new: dict[str, DesiredService]
) -> list[tuple[int, int]]:
    """Drive a rollout where every started replica becomes ready and every stop exits
    one step later; return (ready, live) after each step."""
    observed = running(old)
    seen = []
    for tick in range(1, 50):
        observed = make_all_ready(exit_all_stopping(observed), float(tick))
        _, observed = step(new, observed, float(tick))
        live = [r for r in observed.replicas if r.live]
        seen.append((sum(r.ready for r in live), len(live)))
        if all(r.revision == new["web"].revision and r.ready for r in live) and len(live) == 4:
            break
    assert {r.revision for r in observed.replicas if r.live} == {new["web"].revision}
    return seen


def test_a_rolling_update_with_surge_never_drops_below_the_desired_ready_count() -> None:
    rollout = Rollout(max_surge=Amount(1), max_unavailable=Amount(0))
    old = want(service(replicas=4, rollout=rollout))
    new = want(service(replicas=4, rollout=rollout, command=("./web", "--v2")))
    seen = rollout_until_done(old, new)
    assert all(ready >= 4 for ready, _ in seen[1:])
    assert all(live <= 5 for _, live in seen)


def test_a_rolling_update_without_surge_keeps_unavailability_within_bounds() -> None:
    rollout = Rollout(max_surge=Amount(0), max_unavailable=Amount(1))
    old = want(service(replicas=4, rollout=rollout))
    new = want(service(replicas=4, rollout=rollout, command=("./web", "--v2")))
    seen = rollout_until_done(old, new)
    assert all(live <= 4 for _, live in seen)
    assert all(ready >= 3 for ready, _ in seen)


def test_changing_only_the_replica_count_does_not_roll_out() -> None:
    assert want(service(replicas=2))["web"].revision == want(service(replicas=5))["web"].revision
    assert want(service())["web"].revision != want(service(env={"A": "1"}))["web"].revision


def test_a_removed_service_is_stopped() -> None:
    observed = running(want(service("web"), service("old")))
    actions, _ = step(want(service("web")), observed, 1.0)
    assert actions == [StopReplica("old", 0, 0, "SIGTERM", StopReason.SCALE)]
