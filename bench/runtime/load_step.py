"""Step the load on a service from one to five times its target; time the autoscaler.

Usage: .venv/bin/python bench/runtime/load_step.py [TRIALS]

The service (tests/integration/runtime/steady_app.py) autoscales on requests
per second (target 20 per replica, 1 to 5 replicas, a 3 s scale-down window).
The supervisor and the mesh run in this process, as under ``dirigent up``; the
load comes from another process through the mesh's outbound listener. A trial
holds 15 requests/s for 3 s, steps to 75/s, and records when the supervisor
decides to start replicas ("decision") and when the last new one is ready
("ready"); after the load stops it records when the first replica is stopped
("scale-down"). The window counts from the last high recommendation, and the
autoscaler samples once a second, so scale-down may come at the window minus
up to one second after the load stops, never sooner. The issue's targets are
printed alongside: decision within 1 s, new replicas ready within 2 s.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from dirigent.manifest import parse_manifest
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.node import AppMesh
from dirigent.runtime.model import Action, StartReplica, StopReplica
from dirigent.runtime.supervisor import Supervisor

APP = Path(__file__).parents[2] / "tests" / "integration" / "runtime" / "steady_app.py"
WINDOW = 3.0

LOAD = """
import sys, threading, time, urllib.request
proxy, rate = sys.argv[1], float(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
def run():
    gap = 8 / rate
    while True:
        began = time.monotonic()
        try:
            opener.open("http://web/work", timeout=10).read()
        except OSError:
            pass
        time.sleep(max(0.0, gap - (time.monotonic() - began)))
for _ in range(8):
    threading.Thread(target=run, daemon=True).start()
time.sleep(3600)
"""


class Watch:
    """The mesh, with the moments the bench cares about written down."""

    def __init__(self, mesh: AppMesh) -> None:
        self.mesh = mesh
        self.ready_at: dict[int, float] = {}

    def environment(self, service: str) -> Mapping[str, str]:
        return self.mesh.environment(service)

    def readiness(self, service: str, slot: int, port: int | None, ready: bool) -> None:
        if service == "web" and ready:
            self.ready_at[slot] = time.monotonic()
        self.mesh.readiness(service, slot, port, ready)

    def load(self, service: str) -> Mapping[str, float | None]:
        return self.mesh.load(service)


def _load(proxy: str, rate: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", LOAD, proxy, str(rate)])


async def trial() -> tuple[float, float, float]:
    manifest = parse_manifest(
        f"""
app: step
services:
  web:
    command: [{sys.executable}, {APP}]
    probes: {{readiness: {{http: /ready, period: 0.05}}}}
    autoscale:
      min: 1
      max: 5
      metrics: {{rps: 20}}
      behavior: {{scale_down: {{stabilization_window: {WINDOW}}}}}
  client:
    command: [{sys.executable}, {APP}]
"""
    )
    mesh = AppMesh("step", list(manifest.services), MeshPolicy())
    await mesh.start()
    watch = Watch(mesh)
    started: list[float] = []
    stopped: list[float] = []

    def on_action(action: Action) -> None:
        if isinstance(action, StartReplica) and action.service == "web" and action.slot > 0:
            started.append(time.monotonic())
        if isinstance(action, StopReplica) and action.service == "web":
            stopped.append(time.monotonic())

    with tempfile.TemporaryDirectory() as logs:
        supervisor = Supervisor(
            manifest, base_dir=Path.cwd(), log_dir=Path(logs), uniform=random.random,
            inherited_env={}, on_action=on_action, traffic=watch,
        )  # fmt: skip
        running = asyncio.create_task(supervisor.run())
        while 0 not in watch.ready_at:
            await asyncio.sleep(0.05)
        proxy = f"http://127.0.0.1:{mesh.outbound_port('client')}"
        light = _load(proxy, 15)
        await asyncio.sleep(3.0)
        light.kill()
        heavy = _load(proxy, 75)
        step = time.monotonic()
        while not started or len([s for s in watch.ready_at if s > 0]) < len(started):
            await asyncio.sleep(0.01)
            if time.monotonic() - step > 30:
                raise RuntimeError("no scale-up in 30 s")
        await asyncio.sleep(0.5)
        decision = started[0] - step
        ready = max(t for slot, t in watch.ready_at.items() if slot > 0) - step
        heavy.kill()
        quiet = time.monotonic()
        while not stopped and time.monotonic() - quiet < 30:
            await asyncio.sleep(0.05)
        down = (stopped[0] - quiet) if stopped else float("nan")
        supervisor.request_stop()
        await running
    await mesh.stop()
    return decision, ready, down


def main(trials: int) -> None:
    results = [asyncio.run(trial()) for _ in range(trials)]
    for name, index, target in (
        ("decision", 0, "< 1 s"),
        ("ready", 1, "< 2 s"),
        ("scale-down after load stops", 2, f">= {WINDOW - 1:g} s (window - 1 s sample)"),
    ):
        values = [r[index] for r in results]
        print(f"{name:30s} median {statistics.median(values):6.2f} s  "
              f"max {max(values):6.2f} s   target {target}")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
