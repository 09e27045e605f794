"""The CLI against a real ``dirigent up``: how long each command takes, end to end.

Usage: .venv/bin/python bench/runtime/control_plane.py [ROUNDS]

Measures, on a temporary app whose service is the stdlib HTTP server of
tests/integration/runtime/replica_app.py (two replicas, readiness every 50 ms):

- ``up --detach`` until it returns (both replicas ready), as a CLI process;
- a ``ps`` request over the control socket, in-process (the protocol's cost)
  and as a CLI process (what a person waits for, Python start-up included);
- ``scale web 3`` until the third replica is ready;
- ``kill -9`` of the control plane, then ``up --detach`` again until ready
  (the sweep of leftovers included);
- ``down`` until it returns (every replica and the control plane gone).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dirigent.runtime.channel import call
from dirigent.runtime.control import Done, ListReplicas
from dirigent.runtime.host import AppPaths

APP = Path(__file__).parents[2] / "tests" / "integration" / "runtime" / "replica_app.py"


def cli(manifest: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "dirigent.cli.main", *args, "-f", str(manifest)],
        check=True,
        capture_output=True,
    )


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def ready_count(paths: AppPaths) -> int:
    reply = call(paths.app_dir, paths.socket, ListReplicas(), timeout=10)
    assert isinstance(reply, Done)
    rows = reply.body["replicas"]
    assert isinstance(rows, list)
    return sum(1 for row in rows if row["ready"])


def until(condition: Callable[[], bool]) -> None:
    while not condition():
        time.sleep(0.005)


def report(name: str, values: list[float]) -> None:
    print(
        f"{name:>28}: median {statistics.median(values):8.1f} ms  "
        f"max {max(values):8.1f} ms  (n={len(values)})"
    )


def main(rounds: int) -> None:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "dirigent.yaml"
        manifest.write_text(
            "app: bench\nservices:\n  web:\n"
            f"    command: [{sys.executable}, {APP}]\n    replicas: 2\n"
            "    probes:\n      readiness: {http: /ready, period: 0.05}\n"
            "    stop: {grace_period: 2}\n"
        )
        paths = AppPaths.for_manifest(manifest)
        try:
            for _ in range(rounds):
                results.setdefault("up --detach (CLI)", []).append(
                    timed(lambda: cli(manifest, "up", "--detach", "--no-control-plane"))
                )
                results.setdefault("ps over the socket", []).extend(
                    timed(lambda: ready_count(paths)) for _ in range(20)
                )
                results.setdefault("ps (CLI process)", []).append(
                    timed(lambda: cli(manifest, "ps", "--json"))
                )
                results.setdefault("scale 2->3, until ready", []).append(
                    timed(
                        lambda: (
                            cli(manifest, "scale", "web", "3"),
                            until(lambda: ready_count(paths) == 3),
                        )
                    )
                )
                up = int(paths.lock.read_text())
                os.kill(up, signal.SIGKILL)
                results.setdefault("kill -9 up, up again (CLI)", []).append(
                    timed(lambda: cli(manifest, "up", "--detach", "--no-control-plane"))
                )
                results.setdefault("down (CLI)", []).append(timed(lambda: cli(manifest, "down")))
        finally:
            subprocess.run(
                [sys.executable, "-m", "dirigent.cli.main", "down", "-f", str(manifest)],
                capture_output=True,
                check=False,
            )
    for name, values in results.items():
        report(name, values)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
