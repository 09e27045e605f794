"""ASL core benchmark: Dirigent's in-process runner against aws-local-stepfunctions.

Both engines run the same definitions and inputs from this folder, one after the
other in this process's run, and report state transitions per second with their
history collected. A transition is one state entered and exited: one
``*StateExited`` event in Dirigent's history, one ``StateExited`` event in the
peer's event log (Map iterations included, plus the Map state itself).

Each side warms up, then runs timed rounds of back-to-back executions; the
figure is the median round. This script must never compare outputs loosely: a
workload whose outputs differ prints a warning, because its figures then compare
different work.

usage: .venv/bin/python bench/asl/run.py [--rounds N] [--round-seconds S] [--warmup-seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Workload:
    label: str
    definition: Path
    input: Path
    expected_transitions: int


WORKLOADS = (
    Workload("chain (50 states)", HERE / "chain.asl.json", HERE / "chain-input.json", 50),
    Workload("map (1,000 items)", HERE / "map.asl.json", HERE / "map-input.json", 2 + 2 * 1000),
)


@dataclass(frozen=True)
class Measurement:
    transitions_per_execution: int
    transitions_per_second: float
    output: Any


@dataclass(frozen=True)
class Settings:
    warmup_seconds: float
    rounds: int
    round_seconds: float


def ensure_peer_installed() -> None:
    if (HERE / "node_modules" / "aws-local-stepfunctions").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bench/asl needs Node.js and npm for the peer engine")
    print("installing aws-local-stepfunctions (npm ci) ...", file=sys.stderr)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


def measure_peer(workload: Workload, settings: Settings) -> Measurement:
    argv = [
        "node",
        str(HERE / "driver.mjs"),
        str(workload.definition),
        str(workload.input),
        str(settings.warmup_seconds),
        str(settings.rounds),
        str(settings.round_seconds),
    ]
    done = subprocess.run(argv, cwd=HERE, check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    rates = [r["transitions"] / r["seconds"] for r in report["rounds"]]
    return Measurement(report["transitions"], statistics.median(rates), report["output"])


def count_transitions(history: list[Any]) -> int:
    """One per ``*StateExited`` event (``PassStateExited``, ``MapStateExited``, ...)."""
    return sum(1 for event in history if event.type.endswith("StateExited"))


def measure_dirigent(workload: Workload, settings: Settings) -> Measurement:
    from dirigent.asl.parser import parse_definition
    from dirigent.testing.local import run_local

    # Parsed and validated once, outside the timed loop, as the peer's driver does.
    machine = parse_definition(workload.definition.read_text())
    payload = json.loads(workload.input.read_text())

    def execute() -> int:
        return count_transitions(run_local(machine, payload).history)

    first = run_local(machine, payload)
    if first.status != "SUCCEEDED":
        raise RuntimeError(f"{workload.label}: {first.status} {first.error}: {first.cause}")
    timed_round(execute, settings.warmup_seconds)
    rates = [timed_round(execute, settings.round_seconds) for _ in range(settings.rounds)]
    return Measurement(count_transitions(first.history), statistics.median(rates), first.output)


def timed_round(execute: Callable[[], int], seconds: float) -> float:
    """Transitions per second over back-to-back executions lasting at least ``seconds``."""
    transitions = 0
    start = time.perf_counter()
    while True:
        transitions += execute()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return transitions / elapsed


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.machine())


def dirigent_runner_missing() -> str | None:
    try:
        import dirigent.asl.parser
        import dirigent.testing.local  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def print_table(rows: list[tuple[Workload, Measurement | None, Measurement]]) -> None:
    header = ("workload", "transitions/run", "dirigent t/s", "peer t/s", "dirigent/peer")
    lines = [header]
    for workload, ours, peer in rows:
        lines.append(
            (
                workload.label,
                str(peer.transitions_per_execution),
                f"{ours.transitions_per_second:,.0f}" if ours else "n/a",
                f"{peer.transitions_per_second:,.0f}",
                f"{ours.transitions_per_second / peer.transitions_per_second:.2f}"
                if ours
                else "n/a",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def check(workload: Workload, side: str, measured: Measurement) -> None:
    if measured.transitions_per_execution != workload.expected_transitions:
        print(
            f"WARNING: {side} counted {measured.transitions_per_execution} transitions on "
            f"{workload.label}, expected {workload.expected_transitions}",
            file=sys.stderr,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-seconds", type=float, default=2.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    args = parser.parse_args()
    settings = Settings(args.warmup_seconds, args.rounds, args.round_seconds)

    ensure_peer_installed()
    node = subprocess.run(["node", "--version"], check=True, capture_output=True, text=True)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, Node {node.stdout.strip()}; "
        f"median of {settings.rounds} rounds of {settings.round_seconds:g} s"
    )
    missing = dirigent_runner_missing()
    if missing:
        print(f"WARNING: Dirigent's side skipped, no in-process runner ({missing})")

    rows: list[tuple[Workload, Measurement | None, Measurement]] = []
    for workload in WORKLOADS:
        peer = measure_peer(workload, settings)
        check(workload, "aws-local-stepfunctions", peer)
        ours = None if missing else measure_dirigent(workload, settings)
        if ours is not None:
            check(workload, "dirigent", ours)
            if ours.output != peer.output:
                print(f"WARNING: outputs differ on {workload.label}", file=sys.stderr)
        rows.append((workload, ours, peer))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
