"""Kill -9 a replica N times; measure exit-seen and replacement-ready latency.

Usage: .venv/bin/python bench/runtime/kill_to_ready.py [N]

The replica is tests/integration/runtime/replica_app.py (a stdlib HTTP server)
with an HTTP readiness probe every 10 ms. "Exit seen" is when the supervisor
decides the restart (the pidfd fired and reconcile ran); "ready" is when the
new incarnation's readiness probe first passes. The issue's targets are
printed alongside: exit seen < 10 ms, ready < 300 ms at p99.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from dirigent.manifest import parse_manifest
from dirigent.runtime.model import Action, RestartReplica
from dirigent.runtime.supervisor import Supervisor

APP = Path(__file__).parents[2] / "tests" / "integration" / "runtime" / "replica_app.py"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(kills: int) -> None:
    loop = asyncio.get_running_loop()
    seen_at: list[float] = []

    def on_action(action: Action) -> None:
        if isinstance(action, RestartReplica):
            seen_at.append(loop.time())

    text = (
        "app: bench\nservices:\n  web:\n"
        f"    command: [{sys.executable}, {APP}]\n"
        "    probes:\n      readiness: {http: /ready, period: 0.01, timeout: 0.5}\n"
        "    restart:\n      backoff: {reset_after: 0.001}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        supervisor = Supervisor(
            parse_manifest(text),
            base_dir=Path(tmp),
            log_dir=Path(tmp) / "logs",
            uniform=random.Random(1).random,
            inherited_env=dict(os.environ),
            on_action=on_action,
        )
        task = asyncio.create_task(supervisor.run())
        exit_ms: list[float] = []
        ready_ms: list[float] = []

        def ready_pid() -> int | None:
            rows = [r for r in supervisor.replicas() if r.ready]
            return rows[0].pid if rows else None

        while ready_pid() is None:
            await asyncio.sleep(0.001)
        for _ in range(kills):
            pid = ready_pid()
            assert pid is not None
            await asyncio.sleep(0.2)  # let it run "healthy" so the backoff resets
            before = len(seen_at)
            killed_at = loop.time()
            os.kill(pid, signal.SIGKILL)
            while len(seen_at) == before:
                await asyncio.sleep(0.0005)
            exit_ms.append((seen_at[-1] - killed_at) * 1000)
            while (new := ready_pid()) is None or new == pid:
                await asyncio.sleep(0.0005)
            ready_ms.append((loop.time() - killed_at) * 1000)
        supervisor.request_stop()
        await task

    for name, values, target in (("exit seen", exit_ms, 10.0), ("ready", ready_ms, 300.0)):
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(
            f"{name:>10}: p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(values):7.1f} ms"
            f"  (target p99 < {target:.0f} ms: {p99 / target:.2f}x of target)"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
