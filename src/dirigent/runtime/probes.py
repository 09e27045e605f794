"""Probe verdicts as pure state machines: results in, pass/fail out.

Each probe counts consecutive successes and failures against its thresholds,
as Kubernetes does:

- *startup* starts ``unknown``; ``success_threshold`` successes make it
  ``pass`` for good, ``failure_threshold`` failures make it ``fail`` (the
  replica is restarted). Readiness and liveness wait for it.
- *readiness* starts ``unknown`` (not ready); it flips to ``pass`` after
  ``success_threshold`` successes and to ``fail`` after ``failure_threshold``
  failures, back and forth.
- *liveness* is presumed alive; ``failure_threshold`` failures make it
  ``fail`` (the replica is restarted).

:class:`ReplicaHealth` combines the three into what the supervisor needs:
``ready`` and ``unhealthy``. This module never runs a probe, reads a clock or
does I/O; the shell runs checks and feeds results in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from dirigent.manifest.model import Probe, Probes
from dirigent.runtime.model import StopReason

Verdict: TypeAlias = Literal["unknown", "pass", "fail"]
Role: TypeAlias = Literal["startup", "readiness", "liveness"]


@dataclass(frozen=True, slots=True)
class ProbeState:
    verdict: Verdict = "unknown"
    successes: int = 0
    failures: int = 0


def record(role: Role, probe: Probe, state: ProbeState, ok: bool) -> ProbeState:
    """The state after one probe result."""
    if role == "startup" and state.verdict != "unknown":
        return state  # a startup probe decides once
    if ok:
        successes = state.successes + 1
        verdict = "pass" if successes >= probe.success_threshold else state.verdict
        return ProbeState(verdict, successes, 0)
    failures = state.failures + 1
    verdict = "fail" if failures >= probe.failure_threshold else state.verdict
    return ProbeState(verdict, 0, failures)


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """The three probes of one replica; a probe the spec lacks is simply absent."""

    probes: Probes
    startup: ProbeState = ProbeState()
    readiness: ProbeState = ProbeState()
    liveness: ProbeState = ProbeState()

    @property
    def started(self) -> bool:
        return self.probes.startup is None or self.startup.verdict == "pass"

    @property
    def ready(self) -> bool:
        if not self.started or self.unhealthy is not None:
            return False
        return self.probes.readiness is None or self.readiness.verdict == "pass"

    @property
    def unhealthy(self) -> StopReason | None:
        if self.probes.startup is not None and self.startup.verdict == "fail":
            return StopReason.STARTUP
        if self.probes.liveness is not None and self.liveness.verdict == "fail":
            return StopReason.LIVENESS
        return None

    def active(self, role: Role) -> bool:
        """Whether ``role``'s probe should run now (startup first, then the others)."""
        probe = getattr(self.probes, role)
        if probe is None or self.unhealthy is not None:
            return False
        if role == "startup":
            return self.startup.verdict == "unknown"
        return self.started

    def with_result(self, role: Role, ok: bool) -> ReplicaHealth:
        probe = getattr(self.probes, role)
        if probe is None:
            return self
        state = record(role, probe, getattr(self, role), ok)
        if role == "startup":
            return replace(self, startup=state)
        if role == "readiness":
            return replace(self, readiness=state)
        return replace(self, liveness=state)
