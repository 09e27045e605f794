"""The supervisor shell: keeps observed state, asks reconcile, carries actions out.

One asyncio task runs :meth:`Supervisor.run`. Everything that happens (an
exit seen through a pidfd, a probe verdict that changes, a scale request, a
stop request) only updates state and wakes the loop; the loop then calls the
pure :func:`~dirigent.runtime.reconcile.reconcile` until it has nothing more
to ask, and sleeps until the next event or deadline (a backoff ending, a grace
period running out, the next autoscaler evaluation, once a second).

This module must never make a decision itself (when to restart, how many to
run): those come from reconcile and the autoscaler. Signal handlers of the
program that hosts it must only call :meth:`Supervisor.request_stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from dirigent.manifest.model import Manifest, Service
from dirigent.runtime import observed as state
from dirigent.runtime.autoscale import ScalerHistory, autoscale
from dirigent.runtime.checks import check
from dirigent.runtime.launch import EnvFileError, build_launch, parse_env_file, slot_port
from dirigent.runtime.model import (
    Action,
    DesiredService,
    ForgetReplica,
    KillReplica,
    Observed,
    Phase,
    ReplicaKey,
    ReplicaState,
    RestartReplica,
    RetireReplica,
    StartReplica,
    StopReplica,
    revision_of,
)
from dirigent.runtime.probes import ReplicaHealth, Role
from dirigent.runtime.process import ReplicaProcess, RotatingLog
from dirigent.runtime.procfs import Usage, cpu_percent, usage
from dirigent.runtime.reconcile import next_deadline, reconcile

#: how often the autoscaler runs and CPU/RSS are sampled, in seconds
SAMPLE_PERIOD = 1.0
#: reconcile passes per wake-up; one pass normally suffices, a few settle chains
_MAX_PASSES = 8


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """One row of ``dirigent ps``."""

    service: str
    replica: str
    pid: int | None
    port: int | None
    state: str
    ready: bool
    restarts: int
    uptime_s: float | None
    cpu: float | None
    rss: int | None


@dataclass(frozen=True, slots=True)
class Changes:
    """What an :meth:`Supervisor.apply` changed, by service name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    rolled: tuple[str, ...]


@runtime_checkable
class Traffic(Protocol):
    """What the mesh needs from the runtime, and what it gives back.

    ``environment`` is added to a service's replicas' environment (the mesh's
    ``HTTP_PROXY``); ``readiness`` is told the moment a replica slot becomes
    ready or stops being ready (before it is signalled to stop); ``load``
    answers the service's live request rate, p95 latency and in-flight
    requests for the autoscaler (``None`` where unknown).
    """

    def environment(self, service: str) -> Mapping[str, str]: ...

    def readiness(self, service: str, slot: int, port: int | None, ready: bool) -> None: ...

    def load(self, service: str) -> Mapping[str, float | None]: ...


class Supervisor:
    """Runs the replicas of one manifest; see the module docstring.

    ``on_change`` is called after the loop carried out actions (a replica
    started, stopped, exited), so the host can record what runs.
    ``cgroup_for(spec, replica)`` answers the ``cgroup.procs`` file the
    replica should join before it execs, or None. ``traffic`` is the mesh's
    side of the contract (see :class:`Traffic`).
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        base_dir: Path,
        log_dir: Path,
        uniform: Callable[[], float],
        inherited_env: Mapping[str, str],
        on_action: Callable[[Action], None] | None = None,
        on_change: Callable[[], None] | None = None,
        cgroup_for: Callable[[Service, str], str | None] | None = None,
        traffic: Traffic | None = None,
    ) -> None:
        self._traffic = traffic
        self._base_dir, self._log_dir = base_dir, log_dir
        self._uniform, self._inherited = uniform, dict(inherited_env)
        self._on_action, self._on_change, self._cgroup_for = on_action, on_change, cgroup_for
        self._restarts: dict[str, int] = {}
        self._desired = {n: DesiredService(s, s.replicas) for n, s in manifest.services.items()}
        self._overrides: dict[str, int] = {}
        self.observed = Observed()
        self._processes: dict[ReplicaKey, ReplicaProcess] = {}
        self._health: dict[ReplicaKey, ReplicaHealth] = {}
        self._probes: dict[ReplicaKey, list[asyncio.Task[None]]] = {}
        self._ports: dict[tuple[str, int], int | None] = {}
        self._scalers: dict[str, ScalerHistory] = {}
        self._samples: dict[ReplicaKey, tuple[float, Usage]] = {}
        self._cpu: dict[ReplicaKey, float] = {}
        self._wake: asyncio.Event | None = None
        self._stop_requested = False

    # ------------------------------------------------------------------ requests

    def request_stop(self) -> None:
        """Stop every replica gracefully, dependents first; safe from a signal handler."""
        self._stop_requested = True
        self._poke()

    def scale(self, service: str, replicas: int) -> None:
        """Run ``replicas`` copies until the next :meth:`apply` (the autoscaler steps aside)."""
        self._overrides[service] = replicas
        want = self._desired[service]
        self._desired[service] = DesiredService(want.spec, replicas, want.revision)
        self._poke()

    def restart(self, service: str) -> None:
        """Replace every replica of ``service``, rolling as its ``rollout`` allows.

        A restart is a rollout to a new revision of the same spec: reconcile
        already knows how to replace replicas without dropping below
        ``max_unavailable``.
        """
        want = self._desired[service]
        count = self._restarts[service] = self._restarts.get(service, 0) + 1
        revision = f"{revision_of(want.spec)}.{count}"
        self._desired[service] = DesiredService(want.spec, want.replicas, revision)
        self._poke()

    def apply(self, manifest: Manifest) -> Changes:
        """Adopt a new manifest: changed services roll out, counts follow the manifest.

        A service whose spec did not change keeps its revision (a restart's
        too), so applying the same manifest twice rolls nothing.
        """
        self._overrides.clear()
        desired = {}
        rolled = []
        for name, spec in manifest.services.items():
            current = self._desired.get(name)
            if current is not None and revision_of(current.spec) == revision_of(spec):
                desired[name] = DesiredService(spec, spec.replicas, current.revision)
            else:
                desired[name] = DesiredService(spec, spec.replicas)
                if current is not None:
                    rolled.append(name)
        changes = Changes(
            added=tuple(sorted(set(desired) - set(self._desired))),
            removed=tuple(sorted(set(self._desired) - set(desired))),
            rolled=tuple(sorted(rolled)),
        )
        self._desired = desired
        self._poke()
        return changes

    def revision(self, service: str) -> str:
        """The revision replicas of ``service`` are rolled toward."""
        return self._desired[service].revision

    def services(self) -> dict[str, int]:
        """Each service and the replicas it should run now (after scaling)."""
        return {name: want.replicas for name, want in self._desired.items()}

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        next_sample = loop.time()
        try:
            while True:
                if self._stop_requested:
                    self._desired = {
                        n: DesiredService(d.spec, 0, d.revision) for n, d in self._desired.items()
                    }
                self._settle(loop.time())
                if self._stop_requested and not self.observed.replicas:
                    return
                now = loop.time()
                if now >= next_sample:
                    self._sample(now)
                    next_sample = now + SAMPLE_PERIOD
                    continue
                upcoming = next_deadline(self.observed)
                deadline = min(math.inf if upcoming is None else upcoming, next_sample)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - now))
                self._wake.clear()
        finally:
            for tasks in self._probes.values():
                for task in tasks:
                    task.cancel()
            for process in self._processes.values():
                process.kill()
                process.close()

    def _settle(self, now: float) -> None:
        changed = False
        for _ in range(_MAX_PASSES):
            actions = reconcile(self._desired, self.observed, now, uniform=self._uniform)
            if not actions:
                break
            changed = True
            for action in actions:
                self._carry_out(action, now)
        if changed and self._on_change is not None:
            self._on_change()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ actions

    def _carry_out(self, action: Action, now: float) -> None:
        if self._on_action is not None:
            self._on_action(action)
        match action:
            case StartReplica():
                spec = self._desired[action.service].spec
                self.observed = state.apply(self.observed, action, now, stop=spec.stop)
                self._start(spec, (action.service, action.slot, action.incarnation))
                return
            case StopReplica():
                # Out of the endpoints before the signal: no new request reaches a
                # replica that is shutting down, and the ones in flight finish.
                self._tell_readiness((action.service, action.slot, action.incarnation), False)
                process = self._processes.get((action.service, action.slot, action.incarnation))
                if process is not None:
                    process.signal(getattr(signal, action.signal))
                self._cancel_probes((action.service, action.slot, action.incarnation))
            case KillReplica():
                process = self._processes.get((action.service, action.slot, action.incarnation))
                if process is not None:
                    process.kill()
            case RestartReplica() | ForgetReplica() | RetireReplica():
                key = (action.service, action.slot, action.incarnation)
                process = self._processes.pop(key, None)
                if process is not None:
                    process.close()
                self._health.pop(key, None)
                self._samples.pop(key, None)
                self._cpu.pop(key, None)
        self.observed = state.apply(self.observed, action, now)

    def _start(self, spec: Service, key: ReplicaKey) -> None:
        loop = asyncio.get_running_loop()
        service, slot, _ = key
        port = self._port(spec, slot)
        log = RotatingLog(self._log_dir / f"{service}-{slot}.log", clock=time.time)
        try:
            env_file = {}
            if spec.env_file is not None:
                path = self._base_dir / spec.env_file
                env_file = parse_env_file(path.read_text(encoding="utf-8"), str(path))
            inherited = self._inherited
            if self._traffic is not None:
                inherited = {**inherited, **self._traffic.environment(service)}
            launch = build_launch(
                spec, slot=slot, port=port, inherited=inherited, env_file=env_file
            )
            cwd = str(self._base_dir / spec.cwd) if spec.cwd else str(self._base_dir)
            cgroup = self._cgroup_for(spec, f"{service}-{slot}") if self._cgroup_for else None
            self._processes[key] = ReplicaProcess(
                launch,
                cwd=cwd,
                log=log,
                on_exit=lambda code: self._exited(key, code),
                loop=loop,
                stop_signal=getattr(signal, spec.stop.signal),
                join_cgroup=cgroup,
            )
        except (OSError, EnvFileError) as exc:
            # A replica that cannot even start is a failed replica: it backs off like a crash.
            log.write(f"dirigent: cannot start {service}-{slot}: {exc}\n".encode())
            log.close()
            self.observed = state.record_exit(self.observed, key, 127)
            return
        health = ReplicaHealth(spec.probes)
        self._health[key] = health
        if health.ready:
            self.observed = state.record_ready(self.observed, key, True, loop.time())
            self._tell_readiness(key, True)
        roles: tuple[Role, ...] = ("startup", "readiness", "liveness")
        self._probes[key] = [
            loop.create_task(self._probe_loop(key, role, port, dict(launch.env)))
            for role in roles
            if getattr(spec.probes, role) is not None
        ]

    def _port(self, spec: Service, slot: int) -> int | None:
        if (spec.name, slot) not in self._ports:
            assigned = None
            if spec.port is None:
                # Ask the kernel for a free port once; the slot keeps it across restarts.
                with socket.socket() as probe_socket:
                    probe_socket.bind(("127.0.0.1", 0))
                    assigned = int(probe_socket.getsockname()[1])
            self._ports[(spec.name, slot)] = slot_port(spec, slot, assigned)
        return self._ports[(spec.name, slot)]

    def _tell_readiness(self, key: ReplicaKey, ready: bool) -> None:
        if self._traffic is not None:
            service, slot, _ = key
            self._traffic.readiness(service, slot, self._ports.get((service, slot)), ready)

    def _exited(self, key: ReplicaKey, code: int) -> None:
        self._tell_readiness(key, False)
        self.observed = state.record_exit(self.observed, key, code)
        self._cancel_probes(key)
        self._poke()

    def _cancel_probes(self, key: ReplicaKey) -> None:
        for task in self._probes.pop(key, []):
            task.cancel()

    # ------------------------------------------------------------------ probes

    async def _probe_loop(
        self, key: ReplicaKey, role: Role, port: int | None, env: dict[str, str]
    ) -> None:
        loop = asyncio.get_running_loop()
        probe = getattr(self._desired[key[0]].spec.probes, role)
        await asyncio.sleep(probe.initial_delay)
        while (health := self._health.get(key)) is not None:
            if health.active(role):
                ok = await check(probe, port, env)
                health = self._health.get(key)
                if health is None:
                    return
                updated = health.with_result(role, ok)
                self._health[key] = updated
                if updated.unhealthy is not None:
                    self.observed = state.record_unhealthy(self.observed, key, updated.unhealthy)
                    self._poke()
                    return
                if updated.ready != health.ready:
                    self.observed = state.record_ready(
                        self.observed, key, updated.ready, loop.time()
                    )
                    self._tell_readiness(key, updated.ready)
                    self._poke()
            elif role == "startup":
                return
            await asyncio.sleep(probe.period)

    # ------------------------------------------------------------------ sampling and scaling

    def _sample(self, now: float) -> None:
        for key, process in self._processes.items():
            reading = usage(process.pid)
            if reading is None:
                continue
            previous = self._samples.get(key)
            if previous is not None:
                self._cpu[key] = cpu_percent(previous[1], reading, now - previous[0])
            self._samples[key] = (now, reading)
        if self._stop_requested:
            return
        for name, want in list(self._desired.items()):
            spec = want.spec
            if spec.autoscale is None or name in self._overrides:
                continue
            readings = [
                self._cpu[r.key]
                for r in self.observed.replicas
                if r.service == name and r.live and r.key in self._cpu
            ]
            cpu = sum(readings) / len(readings) if readings else None
            load = self._traffic.load(name) if self._traffic is not None else {}
            # The mesh counts the whole service; the autoscaler wants per-replica averages
            # (as Kubernetes' Pods metrics), except latency, which is not shared out.
            serving = sum(1 for r in self.observed.replicas if r.service == name and r.ready)
            decision = autoscale(
                spec.autoscale,
                want.replicas,
                {
                    "cpu": cpu,
                    "rps": _per_replica(load.get("rps"), serving),
                    "p95_latency": load.get("p95_latency"),
                    "inflight": _per_replica(load.get("inflight"), serving),
                },
                self._scalers.get(name, ScalerHistory()),
                now,
            )
            self._scalers[name] = decision.history
            if decision.replicas != want.replicas:
                self._desired[name] = DesiredService(spec, decision.replicas, want.revision)

    # ------------------------------------------------------------------ views

    def replicas(self, now: float | None = None) -> list[ReplicaInfo]:
        """What ``dirigent ps`` shows: every replica, and slots waiting out a backoff."""
        now = asyncio.get_running_loop().time() if now is None else now
        rows = []
        present = set()
        for replica in self.observed.replicas:
            slot = self.observed.slots.get((replica.service, replica.slot))
            process = self._processes.get(replica.key)
            sample = self._samples.get(replica.key)
            present.add((replica.service, replica.slot))
            rows.append(
                ReplicaInfo(
                    service=replica.service,
                    replica=f"{replica.service}-{replica.slot}",
                    pid=process.pid if process else None,
                    port=self._ports.get((replica.service, replica.slot)),
                    state=replica.phase.value,
                    ready=replica.ready,
                    restarts=slot.restarts if slot else 0,
                    uptime_s=round(now - replica.started_at, 3)
                    if replica.phase is not Phase.EXITED
                    else None,
                    cpu=round(self._cpu[replica.key], 1) if replica.key in self._cpu else None,
                    rss=sample[1].rss_bytes if sample else None,
                )
            )
        for (service, index), slot in self.observed.slots.items():
            if (service, index) in present or not (slot.not_before is not None or slot.done):
                continue
            shown = "crash-loop" if slot.crash_loop else "backoff" if slot.not_before else "exited"
            rows.append(
                ReplicaInfo(
                    service,
                    f"{service}-{index}",
                    None,
                    self._ports.get((service, index)),
                    shown,
                    False,
                    slot.restarts,
                    None,
                    None,
                    None,
                )
            )
        return sorted(rows, key=lambda row: (row.service, row.replica))

    def processes(self) -> list[tuple[ReplicaState, int, int | None]]:
        """Every replica with a process: its state, pid and port (for the host's records)."""
        return [
            (replica, process.pid, self._ports.get((replica.service, replica.slot)))
            for replica in self.observed.replicas
            if (process := self._processes.get(replica.key)) is not None
            and process.exit_code is None
        ]

    def pid_of(self, key: ReplicaKey) -> int | None:
        process = self._processes.get(key)
        return process.pid if process else None


def default_environment() -> dict[str, str]:
    """The environment replicas inherit: the supervisor's own."""
    return dict(os.environ)


def _per_replica(total: float | None, replicas: int) -> float | None:
    if total is None or replicas == 0:
        return None
    return total / replicas
