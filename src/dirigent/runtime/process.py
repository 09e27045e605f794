"""The local process backend: spawn a replica, see its exit at once, stop it, keep its log.

Each replica runs in its own session (so its process group can be signalled
as a whole, children included) and dies with the control plane: see
:func:`die_with_parent`. Its exit is seen the moment it happens: a
pidfd (``os.pidfd_open``) becomes readable and the event loop calls back; no
polling. Its stdout and stderr go through a pipe the loop drains into a
size-rotated log file, each line prefixed with the UTC time it arrived (so
``dirigent logs --since`` can filter and merge replicas).

This module must never decide anything (whether to restart, when to kill):
that is :mod:`dirigent.runtime.reconcile`'s job. It must also never block the
loop on a child: waits happen only once the pidfd says the child is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from dirigent.runtime.launch import Launch

#: rotate a replica's log past this size, keeping this many old files
LOG_MAX_BYTES = 10 * 2**20
LOG_KEEP = 3
#: from <linux/prctl.h>
PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int, join_cgroup: str | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``signum`` when its parent dies; it may join a cgroup.

    Why ``PR_SET_PDEATHSIG`` rather than a wrapper process watching a pipe: it
    costs no extra process per replica, keeps the pid we signal, probe and
    measure the replica's own, and survives ``exec``. Its limits are covered
    elsewhere: it reaches the replica but not the replica's own children, and
    a ``kill -9`` of the control plane gives nobody the chance to escalate past
    a stop signal the replica ignores; the next ``dirigent up`` sweeps both
    (:mod:`dirigent.runtime.ledger`). The signal is the service's own stop
    signal, so a replica losing its control plane still shuts down gracefully.
    The death signal fires when the forking *thread* ends; replicas are forked
    from the event loop's thread, which lives as long as the supervisor.
    """
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: no dlopen after

    def preexec() -> None:
        if join_cgroup is not None:
            # Joining before exec puts the replica under its limits from its first instruction.
            with open(join_cgroup, "w", encoding="ascii") as procs:
                procs.write("0")
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            # The parent died between fork and prctl: the death signal will never come.
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def log_stamp(seconds: float) -> bytes:
    """The prefix of a log line: fixed width, so readers can cut it off without parsing."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()


#: the width of :func:`log_stamp`'s prefix, in bytes
LOG_STAMP_WIDTH = len(log_stamp(0.0))


class RotatingLog:
    """Appends bytes to ``path``; past ``max_bytes`` it shifts ``path`` to ``path.1`` and so on.

    With a ``clock`` (seconds since the epoch), every line starts with its
    :func:`log_stamp`.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = LOG_MAX_BYTES,
        keep: int = LOG_KEEP,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()
        self._line_start = True

    def write(self, data: bytes) -> None:
        if self._clock is not None:
            data = self._stamped(data, log_stamp(self._clock()))
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _stamped(self, data: bytes, stamp: bytes) -> bytes:
        out = bytearray()
        for piece in data.splitlines(keepends=True):
            if self._line_start:
                out += stamp
            out += piece
            self._line_start = piece.endswith(b"\n")
        return bytes(out)

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.keep > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._file = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        self._file.close()  # closing twice is harmless


class ReplicaProcess:
    """One running replica process; ``on_exit(code)`` is called once, from the loop."""

    def __init__(
        self,
        launch: Launch,
        *,
        cwd: str | None,
        log: RotatingLog,
        on_exit: Callable[[int], None],
        loop: asyncio.AbstractEventLoop,
        stop_signal: int = signal.SIGTERM,
        join_cgroup: str | None = None,
    ) -> None:
        self._loop, self._log, self._on_exit = loop, log, on_exit
        read_end, write_end = os.pipe()
        try:
            self._popen = subprocess.Popen(
                launch.argv,
                env=dict(launch.env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,
                # The hook only makes system calls (write, prctl) and the supervisor
                # forks from its one loop thread, so no other thread's lock can be held.
                preexec_fn=die_with_parent(stop_signal, join_cgroup),  # noqa: PLW1509
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.pid = self._popen.pid
        self.exit_code: int | None = None
        self._output = read_end
        os.set_blocking(read_end, False)
        loop.add_reader(read_end, self._drain)
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._exited)

    def signal(self, signum: int) -> None:
        """Signal the whole process group; a group already gone is not an error."""
        if self.exit_code is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def _drain(self) -> None:
        try:
            data = os.read(self._output, 65536)
        except BlockingIOError:
            return
        if data:
            self._log.write(data)
        else:  # every writer closed its end
            self._loop.remove_reader(self._output)
            os.close(self._output)
            self._output = -1

    def _exited(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        # The pidfd is readable: the child is a zombie, so this wait returns at once.
        code = self._popen.wait()
        self.exit_code = code
        # Children of the replica may still hold the pipe; they die with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self._output >= 0:
            self._drain()
        self._on_exit(code)

    def close(self) -> None:
        """Release the log pipe and file once the replica is gone (idempotent)."""
        if self._output >= 0:
            self._loop.remove_reader(self._output)
            os.close(self._output)
            self._output = -1
        self._log.close()
