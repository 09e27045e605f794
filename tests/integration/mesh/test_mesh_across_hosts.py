"""The mesh across machines: two hosts made as network namespaces, mTLS over the veth between.

The callee host runs a replica and its STRICT inbound listener; the caller
host runs an outbound proxy with an identity from the same CA, and the
clients. Each side is its own process started with ``ip netns exec``, so
every byte between them crosses the veth. Latency comes from the mesh's own
fault injection (this kernel has no netem), loss from nftables.

These tests need root, iproute2 and nftables; CI runs them as root and
``make test`` installs nftables. Where the machine cannot make namespaces
they fail and say why: a skip would hide that the cross-host path went untested.
"""

from __future__ import annotations

import os
import statistics
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from .host_side import write_identity
from .kit import new_ca, now
from .netns import HostsUnavailable, Side, TwoHosts, namespaces

#: the policy both hosts read: STRICT mTLS; retries that outlast lost packets
#: (the per-try timeout is shorter than the kernel's 1 s SYN retransmission,
#: so a lost SYN is retried on a new connection instead of waited for), with a
#: budget that lets every request in flight retry at once; and a latency fault
#: on /slow, injected by the callee's inbound listener
MESH = textwrap.indent(
    textwrap.dedent("""\
    mtls: STRICT
    routes:
      payments:
        retries: {attempts: 8, per_try_timeout: 0.6, retry_on: [5xx, connect-failure, reset]}
        rules:
          - name: slow
            match: {path: {prefix: /slow}}
            retries: {attempts: 8, per_try_timeout: 3, retry_on: [5xx, connect-failure, reset]}
            fault: {delay: {fixed: 0.3, percent: 100}}
    destinations:
      payments:
        retry_budget: {percent: 100, min_concurrency: 8}
    """),
    "  ",
)
FAULT_DELAY = 0.3
PER_TRY_TIMEOUT = 0.6


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[TwoHosts, Side, Side]]:
    try:
        made = TwoHosts.make(str(os.getpid() % 100_000))
    except HostsUnavailable as exc:
        pytest.fail(
            f"cannot make two hosts as network namespaces here ({exc}); these tests need "
            "root and iproute2, as CI has",
            pytrace=False,
        )
    try:
        ca, other = new_ca(), new_ca()
        for name, identity in (
            ("payments", ca.issue("payments", now=now())),
            ("orders", ca.issue("orders", now=now())),
            ("foreign", other.issue("orders", now=now())),
        ):
            write_identity(identity, tmp_path / f"{name}.json")
        callee = made.start(
            made.callee, "callee", "--mesh", MESH, "--identity", str(tmp_path / "payments.json"),
            "--address", made.callee_address,
        )  # fmt: skip
        caller = made.start(
            made.caller, "caller", "--mesh", MESH, "--identity", str(tmp_path / "orders.json"),
            "--foreign", str(tmp_path / "foreign.json"), "--callee", made.callee_address,
            "--callee-port", str(callee.hello["port"]),
        )  # fmt: skip
        yield made, callee, caller
    finally:
        made.remove()
    assert made.callee not in namespaces(), "the callee's namespace was left behind"


def test_calls_cross_the_veth_over_mutual_tls(hosts: tuple[TwoHosts, Side, Side]) -> None:
    _, callee, caller = hosts
    result = caller.ask({"op": "load", "path": "/charge", "count": 50, "concurrency": 2})
    assert result["statuses"] == {"200": 50}
    assert callee.ask({"op": "stats"})["served"] == 50
    # The mesh's own client got in; a client with the same identity, straight
    # from the caller host, does too: the callee listens on the veth, not loopback.
    assert caller.ask({"op": "probe", "as": "mesh"}) == {"refused": False}


def test_a_plain_text_or_foreign_ca_client_on_the_other_host_is_refused(
    hosts: tuple[TwoHosts, Side, Side],
) -> None:
    _, callee, caller = hosts
    assert caller.ask({"op": "probe", "as": "plain"}) == {"refused": True}
    assert caller.ask({"op": "probe", "as": "foreign"}) == {"refused": True}
    stats = callee.ask({"op": "stats"})
    assert stats == {"served": 0, "refused": 2}


def test_retries_deliver_every_request_while_the_veth_drops_15_percent_of_packets(
    hosts: tuple[TwoHosts, Side, Side],
) -> None:
    made, _, caller = hosts
    with made.loss(percent=15) as loss:
        # A new connection and handshake per request: a lost SYN or handshake
        # packet is what only the mesh's retry on a new connection heals in time.
        result = caller.ask(
            {"op": "load", "path": "/charge", "count": 200, "concurrency": 4, "fresh": True}
        )
        dropped = loss.dropped()
    latencies = sorted(result["latencies"])
    # A request slower than the per-try timeout had at least one try time out.
    retried = sum(1 for latency in latencies if latency > PER_TRY_TIMEOUT)
    print(
        f"200 requests in {result['seconds']:.1f} s across 15 % loss: {dropped} packets dropped, "
        f"{retried} requests retried after a timed-out try; p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    assert dropped > 20, "the loss rule dropped too little for the run to mean anything"
    assert retried > 0, "no try timed out: the run did not exercise the retries"
    assert result["statuses"] == {"200": 200}


def test_a_latency_fault_injected_by_the_callee_is_observed_on_the_caller_host(
    hosts: tuple[TwoHosts, Side, Side],
) -> None:
    _, _, caller = hosts
    fast = caller.ask({"op": "load", "path": "/charge", "count": 20, "concurrency": 1})
    slow = caller.ask({"op": "load", "path": "/slow/charge", "count": 10, "concurrency": 1})
    assert fast["statuses"] == {"200": 20}
    assert slow["statuses"] == {"200": 10}
    fast_p50, slow_p50 = statistics.median(fast["latencies"]), statistics.median(slow["latencies"])
    print(f"p50 across the veth: {fast_p50 * 1000:.1f} ms plain, {slow_p50 * 1000:.1f} ms faulted")
    assert min(slow["latencies"]) >= FAULT_DELAY
    # Generous for two shared cores: the fault, not the hop, is what makes /slow slow.
    assert slow_p50 < FAULT_DELAY + 0.5
    assert fast_p50 < FAULT_DELAY / 2
