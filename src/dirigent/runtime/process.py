"""The local process backend: spawn a replica, see its exit at once, stop it, keep its log.

Each replica runs in its own session (so its process group can be signalled
as a whole, children included). Its exit is seen the moment it happens: a
pidfd (``os.pidfd_open``) becomes readable and the event loop calls back; no
polling. Its stdout and stderr go through a pipe the loop drains into a
size-rotated log file.

This module must never decide anything (whether to restart, when to kill):
that is :mod:`dirigent.runtime.reconcile`'s job. It must also never block the
loop on a child: waits happen only once the pidfd says the child is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from dirigent.runtime.launch import Launch

#: rotate a replica's log past this size, keeping this many old files
LOG_MAX_BYTES = 10 * 2**20
LOG_KEEP = 3


class RotatingLog:
    """Appends bytes to ``path``; past ``max_bytes`` it shifts ``path`` to ``path.1`` and so on."""

    def __init__(self, path: Path, *, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

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
