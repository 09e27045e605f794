"""A helper process the control plane keeps running beside it (``dirigent server``'s HTTP front).

Unlike a service replica it has no manifest entry, probes or log file: it is
part of Dirigent. It is spawned with the file descriptors it is handed (a
listening socket, its end of a socketpair), shares the control plane's
stdout and stderr, and dies with it (:func:`~dirigent.runtime.process.die_with_parent`).
When it exits on its own it is started again after the runtime's restart
backoff, the first time at once; a run that lasted ``backoff.reset_after``
seconds clears the count. After ``give_up_after`` starts in a row that exited
before the companion said it was ready (:meth:`Companion.mark_ready`), it is
left down and ``on_give_up`` is called: a companion that cannot start (a bad
environment, a broken install) must stop the control plane with an error,
not leave it up with nobody serving. One that was ready and then died is
always started again. :meth:`Companion.stop` signals it and
waits; :meth:`Companion.kill` ends it at once.

Its exit is seen through a pidfd, as a replica's is: no polling.

This module must never decide what the companion runs: the caller's
``prepare`` builds each launch (fresh descriptors for each one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from dirigent.manifest.model import Backoff
from dirigent.runtime.process import die_with_parent
from dirigent.runtime.reconcile import backoff_delay

#: a companion is ours, not a user's: retry fast, and never wait long
COMPANION_BACKOFF = Backoff(initial=0.2, cap=5.0, reset_after=10.0, jitter=0.2)


@dataclass(frozen=True, slots=True)
class CompanionLaunch:
    argv: tuple[str, ...]
    #: descriptors the child inherits, at the same numbers
    pass_fds: tuple[int, ...]
    env: Mapping[str, str]
    #: called once the child exists (the caller closes the child's descriptors)
    spawned: Callable[[], None]


class Companion:
    def __init__(
        self,
        name: str,
        prepare: Callable[[], CompanionLaunch],
        *,
        backoff: Backoff = COMPANION_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[], float] = random.random,
        out: TextIO = sys.stderr,
        give_up_after: int | None = None,
        on_give_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self._prepare = prepare
        self._backoff = backoff
        self._clock = clock
        self._uniform = uniform
        self._out = out
        self._give_up_after = give_up_after
        self._on_give_up = on_give_up
        #: whether the running launch said it was ready; launches in a row that did not
        self._ready = False
        self._unready = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._failures = 0
        self._restart: asyncio.TimerHandle | None = None
        self._stopping = False
        self._exited: asyncio.Future[int] | None = None
        #: how many times it was started, the first included
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Spawn it now (from the event loop's thread, which must outlive it)."""
        loop = asyncio.get_running_loop()
        self._restart = None
        self._ready = False
        try:
            launch = self._prepare()
        except Exception as exc:  # a launch that cannot be built counts as a failed start
            self._not_started(loop, exc)
            return
        try:
            process = subprocess.Popen(
                launch.argv,
                pass_fds=launch.pass_fds,
                env=dict(launch.env),
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C at the terminal reaches the control
                # plane alone, which then stops the companion in its own order.
                start_new_session=True,
                # The hook only makes system calls (prctl), forked from the loop's thread.
                preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
        except OSError as exc:
            launch.spawned()
            self._not_started(loop, exc)
            return
        launch.spawned()
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError as exc:  # out of descriptors: a child we cannot watch must not run
            process.kill()
            process.wait()
            self._not_started(loop, exc)
            return
        self.starts += 1
        self._process = process
        self._started_at = self._clock()
        self._exited = loop.create_future()
        loop.add_reader(pidfd, self._reap, loop, pidfd, process, self._exited)

    def mark_ready(self) -> None:
        """The running launch serves: its exit is a crash to restart from, not a failed start."""
        self._ready = True
        self._unready = 0

    def _not_started(self, loop: asyncio.AbstractEventLoop, exc: Exception) -> None:
        print(f"dirigent: cannot start the {self.name}: {exc}", file=self._out, flush=True)
        self._after_exit(loop, None)

    def _reap(
        self,
        loop: asyncio.AbstractEventLoop,
        pidfd: int,
        process: subprocess.Popen[bytes],
        exited: asyncio.Future[int],
    ) -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        # The pidfd is readable: the child is a zombie, so this wait returns at once.
        code = process.wait()
        self._process = None
        if not exited.done():
            exited.set_result(code)
        if not self._stopping:
            self._after_exit(loop, code)

    def _after_exit(self, loop: asyncio.AbstractEventLoop, code: int | None) -> None:
        ran = self._clock() - self._started_at if code is not None else 0.0
        self._failures = 1 if ran >= self._backoff.reset_after else self._failures + 1
        what = "could not start" if code is None else f"exited with code {code}"
        if code is None or not self._ready:
            self._unready += 1
        self._ready = False
        if self._give_up_after is not None and self._unready >= self._give_up_after:
            print(
                f"dirigent: the {self.name} {what} before it was ready, {self._unready} "
                "times in a row; giving up",
                file=self._out,
                flush=True,
            )
            self._on_give_up()
            return
        delay = backoff_delay(self._failures, self._backoff, self._uniform())
        print(
            f"dirigent: the {self.name} {what}; starting it again in {delay:.1f} s",
            file=self._out,
            flush=True,
        )
        self._restart = loop.call_later(delay, self.start)

    def kill(self) -> None:
        """End it at once (a second Ctrl-C); :meth:`stop` still reports its exit."""
        self._stopping = True
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    def signal_stop(self, signum: int = signal.SIGTERM) -> None:
        """Tell it to stop (once), and start it no more; :meth:`stop` waits for it."""
        if self._stopping:
            return
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM, patience: float = 30.0) -> int | None:
        """Signal it (unless :meth:`signal_stop` did), wait up to ``patience``
        seconds, then kill it; its exit code."""
        self.signal_stop(signum)
        process, exited = self._process, self._exited
        if process is None or exited is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(exited), patience)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await exited
