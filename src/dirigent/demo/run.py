"""One demo run: the order stream with its trouble, live progress, and the summary.

:func:`drive` submits the planned orders at a steady pace, injects the
planned trouble at its points in the stream, prints a progress line about
once a second and waits for every execution to end (or for ``settle``
seconds, after which the unfinished ones count as stuck). :func:`summarize`
turns what was seen and the services' books into the summary, invariants
included.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from dirigent.demo.invariants import Kill, PlannedOrder, ShopRecords, check
from dirigent.demo.scenario import Trouble
from dirigent.demo.shop import LATENCY_FAULT, Interrupted, Progress, ShopDemo

#: the latency fault: this long on this share of charges (the Charge state times out at 2 s)
SLOW_SECONDS = 3.0
SLOW_PERCENT = 50.0
#: how long the killed replica may take to come back before the run goes on without it
COMEBACK_SECONDS = 30.0


def drive(
    demo: ShopDemo,
    orders: Sequence[PlannedOrder],
    trouble: Trouble,
    *,
    interval: float,
    settle: float,
    stop_requested: Callable[[float], bool],
    say: Callable[[str], None],
) -> Progress:
    """Run the stream; ``stop_requested(seconds)`` waits that long, True if asked to stop."""
    progress = Progress()
    began = time.monotonic()
    last_line = 0.0
    slow = False
    pending_kills: list[Kill] = []

    def stamp(message: str) -> None:
        say(f"[{time.monotonic() - began:6.1f}s] {message}")

    def tick(force: bool = False) -> None:
        nonlocal last_line
        demo.poll(progress)
        for kill in list(pending_kills):
            if demo.came_back(kill):
                pending_kills.remove(kill)
                after = time.time() - kill.at
                stamp(f"{kill.replica} is back: restarted and ready {after:.1f} s after the kill")
        if force or time.monotonic() - last_line >= 1.0:
            last_line = time.monotonic()
            c = progress.counts()
            stamp(
                f"orders {len(progress.started)}/{len(orders)} started | running {c['running']}"
                f" · completed {c['completed']} · compensated {c['compensated']}"
                f" · failed {c['failed']} | restarts {progress.restarts}"
                f" | retries {sum(progress.retries.values())}"
            )

    def pause(seconds: float) -> None:
        if stop_requested(seconds):
            raise Interrupted("stopped")

    try:
        for index, order in enumerate(orders):
            if index == trouble.kill_shipping:
                kill = demo.kill("shipping")
                progress.kills.append(kill)
                pending_kills.append(kill)
                stamp(f"trouble: kill -9 {kill.replica} (pid {kill.pid})")
            if index == trouble.slow_payments:
                demo.slow_payments(SLOW_SECONDS, SLOW_PERCENT)
                slow = True
                late = f"{SLOW_SECONDS:g} s late on {SLOW_PERCENT:g}% of charges"
                stamp(f"trouble: payments answers {late}, via {LATENCY_FAULT}")
            if index == trouble.fast_payments and slow:
                demo.slow_payments(0, 0)
                slow = False
                stamp("trouble over: payments is fast again")
            demo.submit(order, progress)
            tick()
            pause(interval)
        if slow:
            demo.slow_payments(0, 0)
            stamp("trouble over: payments is fast again")
        deadline = time.monotonic() + settle
        while len(progress.outcomes) < len(progress.started) and time.monotonic() < deadline:
            tick()
            pause(0.25)
        comeback = time.monotonic() + COMEBACK_SECONDS
        while pending_kills and time.monotonic() < comeback:
            tick()
            pause(0.25)
        tick(force=True)
    finally:
        if slow:  # leave the shop healthy for whoever keeps using it
            demo.slow_payments(0, 0)
    return progress


def summarize(
    orders: Sequence[PlannedOrder],
    progress: Progress,
    records: ShopRecords,
    *,
    elapsed: float,
    api: str,
) -> dict[str, Any]:
    violations = check(orders, progress.outcomes, records, progress.kills)
    counts = progress.counts()
    endings = Counter(
        o.error or o.status for o in progress.outcomes.values() if o.status != "SUCCEEDED"
    )
    return {
        "orders": len(orders),
        "completed": counts["completed"],
        "compensated": counts["compensated"],
        "failed": counts["failed"],
        "unfinished": counts["running"] + len(orders) - len(progress.started),
        "restarts": progress.restarts,
        "retries": sum(progress.retries.values()),
        "endings": dict(sorted(endings.items())),
        "killed": [f"{k.replica} (pid {k.pid})" for k in progress.kills],
        "latency_fault": LATENCY_FAULT,
        "invariants_hold": not violations,
        "violations": [str(v) for v in violations],
        "elapsed_s": round(elapsed, 1),
        "api": api,
    }


def render(summary: dict[str, Any]) -> list[str]:
    """The summary for people."""
    lines = [
        f"orders {summary['orders']}: completed {summary['completed']}, compensated "
        f"{summary['compensated']}, failed {summary['failed']}, unfinished "
        f"{summary['unfinished']}",
        f"restarts {summary['restarts']}, retries {summary['retries']}, killed "
        f"{', '.join(summary['killed']) or 'nothing'}",
        f"latency fault: {summary['latency_fault']}",
    ]
    lines += [f"  {ending}: {count}" for ending, count in summary["endings"].items()]
    if summary["invariants_hold"]:
        lines.append("invariants: all hold (checked from the services' own records)")
    else:
        lines.append(f"invariants: {len(summary['violations'])} violation(s)")
        lines += [f"  {violation}" for violation in summary["violations"]]
    return lines
