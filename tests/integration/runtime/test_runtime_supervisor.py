"""The supervisor runs real replica processes: exits seen at once, hangs and crash loops handled.

Bounds here are generous (seconds) so a loaded machine does not flake them;
precise latencies are measured in bench/runtime.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import random
import signal
import sys
import textwrap
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dirigent.manifest import parse_manifest
from dirigent.runtime.model import Action, Phase, RestartReplica
from dirigent.runtime.supervisor import ReplicaInfo, Supervisor

APP = Path(__file__).with_name("replica_app.py")
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
)
PATIENCE = 20.0  # seconds; a bound, not a measurement


def in_loop(test: Callable[..., Coroutine[None, None, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def manifest(body: str) -> str:
    return "app: test\nservices:\n" + textwrap.indent(textwrap.dedent(body), "  ")


WEB = f"""\
web:
  command: [{sys.executable}, {APP}]
  probes:
    readiness: {{http: /ready, period: 0.05}}
  stop: {{grace_period: 2}}
"""


@asynccontextmanager
async def supervising(
    text: str, tmp_path: Path, actions: list[Action] | None = None
) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(
        parse_manifest(text),
        base_dir=tmp_path,
        log_dir=tmp_path / "logs",
        uniform=random.Random(7).random,
        inherited_env=dict(os.environ),
        on_action=actions.append if actions is not None else None,
    )
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, PATIENCE)


async def until(condition: Callable[[], object], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def rows(supervisor: Supervisor) -> list[ReplicaInfo]:
    return supervisor.replicas()


def ready_rows(supervisor: Supervisor) -> list[ReplicaInfo]:
    return [r for r in rows(supervisor) if r.ready]


@in_loop
async def test_a_killed_replica_is_seen_at_once_and_replaced(tmp_path: Path) -> None:
    actions: list[Action] = []
    async with supervising(manifest(WEB), tmp_path, actions) as supervisor:
        await until(lambda: ready_rows(supervisor), "the first replica to be ready")
        first = ready_rows(supervisor)[0]
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await until(
            lambda: any(isinstance(a, RestartReplica) for a in actions), "the exit to be seen"
        )
        await until(
            lambda: [r for r in ready_rows(supervisor) if r.pid != first.pid],
            "the replacement to be ready",
        )
        replacement = ready_rows(supervisor)[0]
        assert replacement.replica == first.replica == "web-0"
        assert replacement.port == first.port  # the slot keeps its port
        assert replacement.restarts == 1
        restart = next(a for a in actions if isinstance(a, RestartReplica))
        assert restart.exit_code == -signal.SIGKILL


@in_loop
async def test_a_hung_replica_is_restarted_by_its_liveness_probe(tmp_path: Path) -> None:
    hung = manifest(
        f"""\
        web:
          command: [{sys.executable}, {APP}]
          probes:
            readiness: {{http: /ready, period: 0.05}}
            liveness: {{http: /live, period: 0.2, timeout: 0.2, failure_threshold: 3}}
          stop: {{grace_period: 2}}
        """
    )
    async with supervising(hung, tmp_path) as supervisor:
        await until(lambda: ready_rows(supervisor), "the replica to be ready")
        first = ready_rows(supervisor)[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{first.port}/hang", timeout=5) as reply:
            assert reply.status == 200
        await until(
            lambda: [r for r in ready_rows(supervisor) if r.pid != first.pid],
            "a fresh replica after the liveness probe failed",
        )
        assert ready_rows(supervisor)[0].restarts == 1


@in_loop
async def test_a_crash_looping_service_backs_off_and_shows_as_such(tmp_path: Path) -> None:
    crashing = manifest(
        f"""\
        broken:
          command: [{sys.executable}, -c, "import sys; sys.exit(3)"]
          restart:
            backoff: {{initial: 0.2, cap: 0.4, jitter: 0}}
        """
    )
    actions: list[Action] = []
    async with supervising(crashing, tmp_path, actions) as supervisor:
        await until(
            lambda: any(r.state == "crash-loop" for r in rows(supervisor)), "a crash-loop state"
        )
        restarts = [a for a in actions if isinstance(a, RestartReplica)]
        assert [a.exit_code for a in restarts][:3] == [3, 3, 3]
        delays = [b.not_before - a.not_before for a, b in itertools.pairwise(restarts)]
        assert all(delay >= 0.2 for delay in delays[1:])  # waits grew from the second failure


@in_loop
async def test_a_replica_ignoring_sigterm_is_killed_after_its_grace_period(
    tmp_path: Path,
) -> None:
    stubborn = manifest(
        f"""\
        stubborn:
          command: [{sys.executable}, -c, "{IGNORES_SIGTERM}"]
          stop: {{grace_period: 0.3}}
        """
    )
    async with supervising(stubborn, tmp_path) as supervisor:
        await until(lambda: ready_rows(supervisor), "the replica to run")
        supervisor.request_stop()
        await until(lambda: not supervisor.observed.replicas, "the replica to be gone")


@in_loop
async def test_replica_output_lands_in_its_log_file(tmp_path: Path) -> None:
    async with supervising(manifest(WEB), tmp_path) as supervisor:
        await until(lambda: ready_rows(supervisor), "the replica to be ready")
        log = tmp_path / "logs" / "web-0.log"
        await until(lambda: log.exists() and b"listening" in log.read_bytes(), "the log line")
        assert b"as web-0" in log.read_bytes()


@in_loop
async def test_scaling_starts_and_stops_replicas_in_their_slots(tmp_path: Path) -> None:
    async with supervising(manifest(WEB), tmp_path) as supervisor:
        await until(lambda: ready_rows(supervisor), "one replica")
        supervisor.scale("web", 3)
        await until(lambda: len(ready_rows(supervisor)) == 3, "three ready replicas")
        assert [r.replica for r in ready_rows(supervisor)] == ["web-0", "web-1", "web-2"]
        assert len({r.port for r in ready_rows(supervisor)}) == 3
        supervisor.scale("web", 1)
        await until(lambda: [r.replica for r in rows(supervisor)] == ["web-0"], "scale down to one")
        assert all(r.phase is not Phase.EXITED for r in supervisor.observed.replicas)
