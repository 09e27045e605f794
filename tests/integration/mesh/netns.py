"""Two hosts on this machine: network namespaces joined by a veth pair, and packet loss.

Each host is a namespace with its loopback up and one end of a veth pair
addressed in a private /30. The pair is created with both ends already inside
the namespaces, so no interface, address or route ever appears in the
machine's own namespace: traffic stays on the veth and the namespaces'
loopbacks. Loss is an nftables table inside the receiving namespace that drops
a random share of what arrives on its veth (this kernel has no netem).

Everything made here is removed by :meth:`TwoHosts.remove` (deleting a
namespace deletes its veth end and its nftables tables too), which the
fixture calls even when a test fails. This module must never change anything
outside the namespaces it made.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the repository, so that ``python -m tests...`` finds this package in a namespace
ROOT = Path(__file__).resolve().parents[3]
#: a /30 of the private 10/8; only ever configured inside the two namespaces
SUBNET = ("10.213.0.1", "10.213.0.2")
_TABLE = "dirigent_loss"


class HostsUnavailable(Exception):
    """The machine cannot make the namespaces, veth or firewall rules the test needs."""


def _run(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise HostsUnavailable(f"{command[0]} is not installed: {exc}") from exc
    if done.returncode != 0:
        raise HostsUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Side:
    """A process on one host that answers a JSON line per JSON command."""

    process: subprocess.Popen[str]
    hello: dict[str, Any]

    def ask(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return _line(self.process, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()  # end of input: the side closes its listeners
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _line(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    # One command, one answer line: nothing is left buffered in the pipe's
    # reader between answers, so waiting on the descriptor is enough.
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    if not readable:
        raise AssertionError(f"no answer from the side (pid {process.pid}) within {timeout} s")
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        assert process.stderr is not None
        raise AssertionError(f"side exited ({process.returncode}): {process.stderr.read()[-2000:]}")
    answer: dict[str, Any] = json.loads(line)
    return answer


@dataclass
class TwoHosts:
    """``callee`` and ``caller`` namespaces; addresses on the veth between them."""

    callee: str
    caller: str
    callee_address: str = SUBNET[0]
    caller_address: str = SUBNET[1]
    sides: list[Side] = field(default_factory=list)

    @property
    def callee_link(self) -> str:
        return f"{self.callee[:11]}-v"  # interface names are at most 15 characters

    @classmethod
    def make(cls, tag: str) -> TwoHosts:
        hosts = cls(callee=f"dg{tag}a", caller=f"dg{tag}b")
        try:
            for namespace in (hosts.callee, hosts.caller):
                _run("ip", "netns", "add", namespace)
                _run("ip", "-n", namespace, "link", "set", "lo", "up")
            _run(
                "ip", "link", "add", "name", hosts.callee_link, "netns", hosts.callee,
                "type", "veth", "peer", "name", f"{hosts.caller[:11]}-v", "netns", hosts.caller,
            )  # fmt: skip
            for namespace, link, address in (
                (hosts.callee, hosts.callee_link, hosts.callee_address),
                (hosts.caller, f"{hosts.caller[:11]}-v", hosts.caller_address),
            ):
                _run("ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", link)
                _run("ip", "-n", namespace, "link", "set", link, "up")
        except BaseException:
            hosts.remove()
            raise
        return hosts

    def start(self, namespace: str, *arguments: str) -> Side:
        """``host_side.py`` with ``arguments`` in ``namespace``, once it says it is ready."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m",
             "tests.integration.mesh.host_side", *arguments],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": _python_path()},
        )  # fmt: skip
        side = Side(process, {})
        self.sides.append(side)
        side.hello = _line(process, timeout=60)
        return side

    @contextlib.contextmanager
    def loss(self, percent: int) -> Iterator[LossCounter]:
        """Drop ``percent``% of the packets arriving at the callee over the veth."""
        if shutil.which("nft") is None:
            raise HostsUnavailable(
                "nft is not installed: the Debian package nftables drops the packets "
                "(make test installs it when run as root)"
            )
        nft = ("ip", "netns", "exec", self.callee, "nft")
        _run(*nft, "add", "table", "inet", _TABLE)
        try:
            hook = "{ type filter hook input priority 0; policy accept; }"
            _run(*nft, "add", "chain", "inet", _TABLE, "input", hook)
            share = ("numgen", "random", "mod", "100", "<", str(percent))
            _run(*nft, "add", "rule", "inet", _TABLE, "input", "iifname", self.callee_link,
                 *share, "counter", "drop")  # fmt: skip
            yield LossCounter(nft)
        finally:
            with contextlib.suppress(HostsUnavailable):
                _run(*nft, "delete", "table", "inet", _TABLE)

    def remove(self) -> None:
        for side in self.sides:
            side.stop()
        for namespace in (self.callee, self.caller):
            # The veth ends and any nftables table go with their namespace.
            with contextlib.suppress(HostsUnavailable):
                _run("ip", "netns", "delete", namespace)


@dataclass
class LossCounter:
    nft: tuple[str, ...]

    def dropped(self) -> int:
        """Packets the loss rule has dropped so far."""
        ruleset = json.loads(_run(*self.nft, "-j", "list", "table", "inet", _TABLE))
        for item in ruleset["nftables"]:
            for expression in item.get("rule", {}).get("expr", ()):
                if "counter" in expression:
                    packets: int = expression["counter"]["packets"]
                    return packets
        raise AssertionError("no counter on the loss rule")


def _python_path() -> str:
    # The repository first, for ``tests``; whatever the caller set after it,
    # so the side imports the same ``dirigent`` as the test does.
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def namespaces() -> list[str]:
    return _run("ip", "netns", "list").split()
