"""Helpers to drive a real ``dirigent`` CLI against a temporary app directory.

Every process a test starts is found again and killed on teardown, even when
the test failed: the ``up`` process through its lock file, replicas and their
children through the ``DIRIGENT_INSTANCE`` marker they all inherit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dirigent.runtime.ledger import MARKER
from dirigent.runtime.procfs import pids_with_env

APP = Path(__file__).with_name("replica_app.py")
PATIENCE = 30.0  # seconds; a bound, not a measurement


def alive(pid: int) -> bool:
    """Running (a zombie has exited; it only waits for its parent to notice)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def wait_for(condition: Callable[[], Any], what: str, patience: float = PATIENCE) -> Any:
    deadline = time.monotonic() + patience
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class App:
    """A temporary app directory with a manifest, and the CLI pointed at it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.manifest = directory / "dirigent.yaml"
        self.state = directory / ".dirigent"

    def write(self, services: str) -> None:
        body = textwrap.indent(textwrap.dedent(services), "  ")
        self.manifest.write_text(f"app: clitest\nservices:\n{body}", encoding="utf-8")

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        file_option = "--file" if args[0] == "logs" else "-f"
        if args[0] == "up":
            # These tests are about the services; the control plane has its own tests.
            args = (*args, "--no-control-plane")
        return subprocess.run(
            [sys.executable, "-m", "dirigent.cli.main", *args, file_option, str(self.manifest)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, f"dirigent {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def ps(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.ok("ps", "--json"))
        return rows

    def ready(self, service: str) -> list[dict[str, Any]]:
        return [r for r in self.ps() if r["service"] == service and r["ready"]]

    def up_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.state / "up.lock").read_text().strip())
        return None

    def marked(self) -> set[int]:
        """Live processes started for this app (replicas and whatever they forked)."""
        return {pid for pid in pids_with_env(MARKER, str(self.state)) if alive(pid)}

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.cli("down", timeout=30)
        up = self.up_pid()
        if up is not None and alive(up) and b"dirigent" in _cmdline(up):
            os.kill(up, signal.SIGKILL)
        for pid in self.marked():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def web(replicas: int = 1, *, greeting: str = "hello", extra: str = "") -> str:
    return f"""\
web:
  command: [{sys.executable}, {APP}]
  replicas: {replicas}
  env: {{GREETING: {greeting}}}
  probes:
    readiness: {{http: /ready, period: 0.05}}
  stop: {{grace_period: 5}}
{textwrap.indent(textwrap.dedent(extra), "  ")}"""
