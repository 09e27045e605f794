"""CPU, memory and identity of processes, read from ``/proc`` (Linux only).

Readings are best effort: a process that is gone (or not ours to read) reads
as None, never an error. This module only reads; it never signals or changes
a process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int


def usage(pid: int) -> Usage | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            resident = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return Usage(cpu_seconds=cpu, rss_bytes=resident * _PAGE)


def cpu_percent(before: Usage, after: Usage, elapsed: float) -> float:
    """Percent of one core used between two readings ``elapsed`` seconds apart."""
    if elapsed <= 0:
        return 0.0
    return max(0.0, (after.cpu_seconds - before.cpu_seconds) / elapsed * 100.0)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of stat).

    A pid and its start time together name one process for good: a recycled
    pid has a later start time.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment holds ``name=value`` (those of other users are skipped)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
        except OSError:
            continue
        if wanted in variables:
            found.append(int(entry.name))
    return found
