"""No orphans, no doubles: the record of running replicas, and the sweep after a crash.

``dirigent up`` keeps ``.dirigent/replicas.json`` up to date with every
replica it runs (service, slot, pid, the pid's start time, port, revision).
When it starts and finds replicas of an earlier ``up`` still alive (that
``up`` was ``kill -9``-ed, or the machine ran out of memory), it stops them
before starting its own, so nothing runs twice and nothing is leaked.

Stop rather than adopt: a replica's stdout and stderr are a pipe its
supervisor read, gone with it; an adopted replica would lose its logs or die
of SIGPIPE on its next write. Replicas die with their parent anyway
(:func:`dirigent.runtime.process.die_with_parent`), so what the sweep finds
is the rare leftover: a replica that ignores its stop signal, or a child a
replica forked. Those are found two ways, because each misses something:
the records (a pid and its start time name one process, never a recycled
pid), and the environment variable ``DIRIGENT_INSTANCE`` every replica and
its descendants inherit (it finds children that left their process group,
and replicas spawned a moment before the crash and never recorded).

This module must never touch a process that the records or the marker do
not both tie to this app directory: a recycled pid fails the start-time
check, and the marker holds this app's own state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from dirigent.runtime.procfs import pids_with_env, start_ticks

#: the environment variable that ties a process to one app's state directory
MARKER = "DIRIGENT_INSTANCE"


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    service: str
    slot: int
    pid: int
    start_ticks: int
    port: int | None
    revision: str


def encode_records(records: Iterable[ReplicaRecord]) -> str:
    return json.dumps({"replicas": [asdict(r) for r in records]}, indent=1) + "\n"


def decode_records(text: str) -> list[ReplicaRecord]:
    """Records from the file's text; a damaged file yields what can be read of it."""
    try:
        rows = json.loads(text).get("replicas", [])
    except (ValueError, AttributeError):
        return []
    records = []
    for row in rows if isinstance(rows, list) else []:
        with contextlib.suppress(TypeError, ValueError, KeyError):
            record = ReplicaRecord(**row)
            if isinstance(record.pid, int) and isinstance(record.start_ticks, int):
                records.append(record)
    return records


def write_records(path: Path, records: Iterable[ReplicaRecord]) -> None:
    """Replace the file atomically: a crash mid-write leaves the old file, never half of one."""
    draft = path.with_name(path.name + ".tmp")
    draft.write_text(encode_records(records), encoding="utf-8")
    draft.replace(path)


def read_records(path: Path) -> list[ReplicaRecord]:
    try:
        return decode_records(path.read_text(encoding="utf-8"))
    except OSError:
        return []


def leftovers(records: Iterable[ReplicaRecord], instance: str) -> tuple[set[int], set[int]]:
    """``(group_leaders, processes)`` still alive from an earlier run.

    Leaders are recorded replicas whose pid still has its recorded start time;
    processes are every other process that carries this app's marker.
    """
    leaders = {r.pid for r in records if start_ticks(r.pid) == r.start_ticks}
    own = os.getpid()
    others = {pid for pid in pids_with_env(MARKER, instance) if pid != own} - leaders
    return leaders, others


def sweep(path: Path, instance: str, *, grace: float) -> int:
    """Stop whatever an earlier run left behind; returns how many processes it found.

    The stop signal goes first (to the whole group of a recorded replica),
    ``SIGKILL`` after ``grace`` seconds to what is still alive. Exits are seen
    through pidfds, which work for processes that are not our children.
    """
    leaders, others = leftovers(read_records(path), instance)
    found = leaders | others
    if not found:
        return 0
    pidfds = _open_pidfds(found)
    for pid in leaders:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    for pid in others:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    _wait(pidfds, grace)
    for pid, pidfd in pidfds.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid in leaders:
                os.killpg(pid, signal.SIGKILL)
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    _wait(pidfds, grace)
    for pidfd in pidfds.values():
        os.close(pidfd)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return len(found)


def _open_pidfds(pids: Iterable[int]) -> dict[int, int]:
    pidfds = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            pidfds[pid] = os.pidfd_open(pid)
    return pidfds


def _wait(pidfds: dict[int, int], timeout: float) -> None:
    """Until every pidfd is readable (its process exited) or ``timeout`` passes."""
    poller = select.poll()
    pending = set(pidfds.values())
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for fd, _events in poller.poll(left * 1000):
            pending.discard(fd)
            poller.unregister(fd)
