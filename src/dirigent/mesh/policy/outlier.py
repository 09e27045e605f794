"""Outlier detection: eject an endpoint that keeps failing, readmit it later.

As Istio's ``outlierDetection`` and Envoy's outlier detector define it:

- an endpoint is ejected after ``consecutive_5xx`` 5xx outcomes in a row, or
  after ``consecutive_gateway_errors`` gateway errors (502, 503, 504, or no
  response) in a row; a threshold of 0 turns that check off, and any success
  resets both runs;
- it stays out for ``base_ejection_time`` * the number of times it has been
  ejected, capped at ``max_ejection_time``;
- no ejection happens that would leave more than ``max_ejection_percent`` of
  the endpoints out, except that one endpoint may always be ejected (Envoy's
  rule, so small pools still heal);
- once its time has passed it is readmitted with its runs cleared; its
  ejection count drops by one for each ``interval`` it then stays in without
  being ejected again, so a recovered endpoint earns back short ejections.

State is a frozen :class:`OutlierState`; every function returns the next one.
This module must never read the clock: ``now`` is an argument, in seconds on
any monotonic scale.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from dirigent.mesh.policy.outcome import Outcome, is_5xx, is_gateway_error


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Istio's defaults, except ``consecutive_gateway_errors``, which it leaves off too."""

    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: float = 10.0


@dataclass(frozen=True, slots=True)
class HostRecord:
    """What outlier detection knows about one endpoint (keyed by its address)."""

    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    ejections: int = 0
    #: when an ejected endpoint may come back; None while it is in
    ejected_until: float | None = None
    #: when the ejection count was last earned back (or the endpoint readmitted)
    since: float = 0.0


def _no_hosts() -> Mapping[str, HostRecord]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OutlierState:
    hosts: Mapping[str, HostRecord] = field(default_factory=_no_hosts)

    def record(self, address: str) -> HostRecord:
        return self.hosts.get(address, HostRecord())

    def ejected(self) -> frozenset[str]:
        return frozenset(a for a, r in self.hosts.items() if r.ejected_until is not None)

    def _with(self, address: str, record: HostRecord) -> OutlierState:
        hosts = dict(self.hosts)
        hosts[address] = record
        return OutlierState(MappingProxyType(hosts))


@dataclass(frozen=True, slots=True)
class Ejected:
    """An endpoint was ejected until ``until`` (its ``count``-th ejection)."""

    address: str
    until: float
    count: int


def observe(
    policy: OutlierDetection,
    state: OutlierState,
    address: str,
    outcome: Outcome,
    *,
    now: float,
    pool_size: int,
) -> tuple[OutlierState, Ejected | None]:
    """Fold one attempt's outcome into the state; say so when it ejects the endpoint.

    ``pool_size`` is the number of endpoints of the destination, ejected ones
    included, which the maximum ejected share is measured against.
    """
    record = state.record(address)
    if record.ejected_until is not None:
        # Requests already in flight when it was ejected still report back;
        # they neither extend nor repeat the ejection.
        return state, None
    if not is_5xx(outcome):
        if record.consecutive_5xx == 0 and record.consecutive_gateway == 0:
            return state, None
        return state._with(address, replace(record, consecutive_5xx=0, consecutive_gateway=0)), None

    runs = replace(
        record,
        consecutive_5xx=record.consecutive_5xx + 1,
        consecutive_gateway=record.consecutive_gateway + 1 if is_gateway_error(outcome) else 0,
    )
    tripped = (0 < policy.consecutive_5xx <= runs.consecutive_5xx) or (
        0 < policy.consecutive_gateway_errors <= runs.consecutive_gateway
    )
    if not tripped or not _may_eject(policy, state, pool_size):
        return state._with(address, runs), None
    count = runs.ejections + 1
    until = now + min(policy.base_ejection_time * count, policy.max_ejection_time)
    ejected = HostRecord(ejections=count, ejected_until=until, since=now)
    return state._with(address, ejected), Ejected(address, until, count)


def _may_eject(policy: OutlierDetection, state: OutlierState, pool_size: int) -> bool:
    already = len(state.ejected())
    if already == 0:
        return True  # one endpoint may always be ejected
    return (already + 1) * 100 <= policy.max_ejection_percent * pool_size


def readmit(
    policy: OutlierDetection, state: OutlierState, now: float
) -> tuple[OutlierState, frozenset[str]]:
    """Bring back every endpoint whose ejection time has passed; name them.

    Also earns back one ejection for each full ``interval`` an endpoint has
    stayed in since it was readmitted. Call it before each pick, or on a timer.
    """
    hosts = dict(state.hosts)
    back: set[str] = set()
    for address, record in state.hosts.items():
        if record.ejected_until is not None:
            if now >= record.ejected_until:
                hosts[address] = HostRecord(ejections=record.ejections, since=now)
                back.add(address)
        elif record.ejections > 0 and policy.interval > 0:
            earned = int((now - record.since) // policy.interval)
            if earned > 0:
                hosts[address] = replace(
                    record,
                    ejections=max(record.ejections - earned, 0),
                    since=record.since + earned * policy.interval,
                )
    if hosts == dict(state.hosts):
        return state, frozenset()
    return OutlierState(MappingProxyType(hosts)), frozenset(back)


def admitted(state: OutlierState, addresses: Collection[str]) -> list[str]:
    """The addresses that are not ejected, in the order given."""
    out = state.ejected()
    return [address for address in addresses if address not in out]


def forget(state: OutlierState, keep: Collection[str]) -> OutlierState:
    """Drop records of endpoints that are gone (the runtime removed the replica)."""
    hosts = {a: r for a, r in state.hosts.items() if a in keep}
    if len(hosts) == len(state.hosts):
        return state
    return OutlierState(MappingProxyType(hosts))
