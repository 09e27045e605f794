"""Read a service's replica logs: all slots, rotated files included, merged by time; or follow.

The supervisor writes ``.dirigent/logs/<service>-<slot>.log`` (rotated to
``.log.1``, ``.log.2``, ...), each line starting with a fixed-width UTC
stamp (:func:`dirigent.runtime.process.log_stamp`). Reading works whether or
not the app is running: logs outlive their replicas.

This module only reads files; it never signals a process or writes a log.
Following is polling by design: a log reader is a person at a terminal, and
a fifth of a second is well below what they notice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dirigent.runtime.process import LOG_STAMP_WIDTH

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
FOLLOW_PERIOD = 0.2


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float  # seconds since the epoch; 0 for a line without a stamp
    replica: str
    text: str


def parse_since(text: str, now: float) -> float:
    """``30s``, ``5m``, ``2h``, ``1d`` ago, or an ISO 8601 time; raises ValueError otherwise."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def replica_logs(log_dir: Path, service: str) -> dict[str, list[Path]]:
    """Each replica's log files, oldest first (``.log.3`` ... ``.log``)."""
    pattern = re.compile(rf"^({re.escape(service)}-\d+)\.log(?:\.(\d+))?$")
    found: dict[str, list[tuple[int, Path]]] = {}
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return {}
    for entry in entries:
        match = pattern.match(entry.name)
        if match:
            age = int(match.group(2) or 0)
            found.setdefault(match.group(1), []).append((age, Path(entry.path)))
    return {
        replica: [path for _age, path in sorted(files, reverse=True)]
        for replica, files in sorted(found.items())
    }


def parse_line(raw: bytes, replica: str) -> LogLine:
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    stamp = text[: LOG_STAMP_WIDTH - 1]
    try:
        at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return LogLine(0.0, replica, text)
    return LogLine(at, replica, text[LOG_STAMP_WIDTH:])


def read_service(
    log_dir: Path,
    service: str,
    since: float | None = None,
    *,
    upto: dict[Path, int] | None = None,
) -> list[LogLine]:
    """Every line of every replica of ``service``, merged in time order.

    ``upto`` caps how many bytes of a file are read (what a follower will
    print from there on is not printed twice).
    """
    lines: list[LogLine] = []
    for replica, paths in replica_logs(log_dir, service).items():
        for path in paths:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # rotated away while we listed
            if upto is not None and path in upto:
                data = data[: upto[path]]
            lines.extend(parse_line(raw, replica) for raw in data.splitlines())
    if since is not None:
        lines = [line for line in lines if line.at >= since]
    # A stable sort keeps each replica's own order among lines of the same instant.
    return sorted(lines, key=lambda line: line.at)


class _Tail:
    """One replica's current log file, read as it grows and across rotations."""

    def __init__(self, path: Path, *, from_end: bool) -> None:
        self.path = path
        self._file = path.open("rb")
        self._inode = os.fstat(self._file.fileno()).st_ino
        self.start = self._file.seek(0, os.SEEK_END) if from_end else 0
        self._partial = b""

    def read(self) -> list[bytes]:
        lines = self._drain()
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return lines
        if inode != self._inode:  # rotated: the old file is finished, start on the new one
            self._file.close()
            self._file = self.path.open("rb")
            self._inode = inode
            lines += self._drain()
        return lines

    def _drain(self) -> list[bytes]:
        data = self._partial + self._file.read()
        *complete, self._partial = data.split(b"\n")
        return complete

    def close(self) -> None:
        self._file.close()


class Follower:
    """``logs -f``: :meth:`history` once, then :meth:`lines` as they are written, forever.

    The current files are opened before the history is read, and the history
    stops where following starts: no line is lost or printed twice.
    """

    def __init__(self, log_dir: Path, service: str) -> None:
        self._log_dir, self._service = log_dir, service
        self._tails: dict[str, _Tail] = {}
        self._open_new()

    def history(self, since: float | None) -> list[LogLine]:
        upto = {tail.path: tail.start for tail in self._tails.values()}
        return read_service(self._log_dir, self._service, since, upto=upto)

    def lines(self, *, sleep: Callable[[float], None] = time.sleep) -> Iterator[LogLine]:
        while True:
            for replica, tail in list(self._tails.items()):
                for raw in tail.read():
                    yield parse_line(raw, replica)
            sleep(FOLLOW_PERIOD)
            self._open_new(from_start=True)

    def _open_new(self, *, from_start: bool = False) -> None:
        for replica in replica_logs(self._log_dir, self._service):
            current = self._log_dir / f"{replica}.log"
            if replica in self._tails or not current.exists():
                continue
            # A replica that appeared while following is new from its first line.
            self._tails[replica] = _Tail(current, from_end=not from_start)

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()
