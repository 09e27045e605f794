"""A companion process (as `dirigent server`'s HTTP front): restarted, stopped, handed fds."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import sys
import time

from dirigent.manifest.model import Backoff
from dirigent.runtime.companion import Companion, CompanionLaunch

QUICK = Backoff(initial=0.05, cap=0.2, reset_after=30.0, jitter=0.0)


def python(
    code: str, pass_fds: tuple[int, ...] = (), spawned: list[str] | None = None
) -> CompanionLaunch:
    notes = spawned if spawned is not None else []
    return CompanionLaunch(
        (sys.executable, "-c", code), pass_fds, dict(os.environ), lambda: notes.append("spawned")
    )


def run_until_started(companion: Companion, times: int) -> None:
    """Start ``companion``, wait until it was started ``times`` times, stop it."""

    async def main() -> None:
        companion.start()
        while companion.starts < times:
            await asyncio.sleep(0.01)
        await companion.stop()

    asyncio.run(main())


def test_a_companion_that_exits_is_started_again_after_a_growing_backoff() -> None:
    out = io.StringIO()
    starts: list[float] = []

    def prepare() -> CompanionLaunch:
        starts.append(time.monotonic())
        return python("raise SystemExit(7)")

    companion = Companion("test helper", prepare, backoff=QUICK, out=out)
    run_until_started(companion, 4)
    assert companion.starts == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # The first restart is at once; then 0.05 s, then 0.1 s (plus the child's own start).
    assert gaps[1] >= 0.05
    assert gaps[2] >= 0.1
    assert "the test helper exited with code 7; starting it again in 0.0 s" in out.getvalue()
    assert "starting it again in 0.1 s" in out.getvalue()


def test_stop_signals_it_and_returns_how_it_ended_without_starting_it_again() -> None:
    async def main() -> tuple[int | None, Companion]:
        companion = Companion(
            "sleeper", lambda: python("import time; time.sleep(60)"), backoff=QUICK
        )
        companion.start()
        await asyncio.sleep(0.2)
        code = await companion.stop(signal.SIGTERM)
        await asyncio.sleep(0.2)
        return code, companion

    code, companion = asyncio.run(main())
    assert code == -signal.SIGTERM
    assert companion.starts == 1
    assert companion.pid is None


def test_a_companion_ignoring_the_stop_signal_is_killed_after_the_patience() -> None:
    async def main() -> tuple[int | None, float]:
        read_end, write_end = os.pipe()
        code = (
            "import os, signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"os.write({write_end}, b'r')\n"
            "time.sleep(60)\n"
        )
        spawned: list[str] = []
        companion = Companion(
            "stubborn", lambda: python(code, (write_end,), spawned), backoff=QUICK
        )
        companion.start()
        os.close(write_end)
        await asyncio.to_thread(os.read, read_end, 1)  # its SIGTERM handler is in place
        os.close(read_end)
        began = time.monotonic()
        ended = await companion.stop(signal.SIGTERM, patience=0.5)
        return ended, time.monotonic() - began

    code, took = asyncio.run(main())
    assert code == -signal.SIGKILL
    assert 0.5 <= took < 5


def test_the_companion_inherits_the_descriptors_it_is_handed_and_prepare_closes_its_copies() -> (
    None
):
    async def main() -> tuple[bytes, list[str]]:
        read_end, write_end = os.pipe()
        spawned: list[str] = []
        launch = python(
            # It stays up: one that exits would be started again (the first time at once).
            f"import os, time; os.write({write_end}, b'hello from the companion'); time.sleep(60)",
            (write_end,),
            spawned,
        )
        companion = Companion("writer", lambda: launch, backoff=QUICK)
        companion.start()
        os.close(write_end)
        data = await asyncio.to_thread(os.read, read_end, 100)
        os.close(read_end)
        await companion.stop()
        return data, spawned

    data, spawned = asyncio.run(main())
    assert data == b"hello from the companion"
    assert spawned == ["spawned"]


def test_a_companion_failing_again_and_again_is_given_up_on_and_the_owner_told() -> None:
    out = io.StringIO()
    told: list[str] = []

    async def main() -> Companion:
        companion = Companion(
            "doomed",
            lambda: python("raise SystemExit(2)"),
            backoff=QUICK,
            out=out,
            give_up_after=3,
            on_give_up=lambda: told.append("gave up"),
        )
        companion.start()
        while not told:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # longer than any backoff: no start after giving up
        return companion

    companion = asyncio.run(main())
    assert told == ["gave up"]
    assert companion.starts == 3
    assert (
        "the doomed exited with code 2 before it was ready, 3 times in a row; giving up"
        in out.getvalue()
    )


def test_a_launch_that_cannot_be_built_counts_as_a_failed_start_and_is_retried() -> None:
    out = io.StringIO()
    attempts: list[int] = []

    def prepare() -> CompanionLaunch:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(24, "Too many open files")
        return python("import time; time.sleep(60)")

    companion = Companion("flaky", prepare, backoff=QUICK, out=out)
    run_until_started(companion, 1)
    assert len(attempts) == 2
    assert companion.starts == 1
    assert "cannot start the flaky: [Errno 24] Too many open files" in out.getvalue()


def test_a_companion_that_was_ready_and_then_crashes_is_never_given_up_on() -> None:
    out = io.StringIO()
    told: list[str] = []
    companion: Companion

    def prepare() -> CompanionLaunch:
        # Ready as soon as it is spawned (as a front that serves), then it dies.
        return CompanionLaunch(
            (sys.executable, "-c", "raise SystemExit(1)"),
            (),
            dict(os.environ),
            companion.mark_ready,
        )

    companion = Companion(
        "crasher",
        prepare,
        backoff=QUICK,
        out=out,
        give_up_after=2,
        on_give_up=lambda: told.append("gave up"),
    )
    run_until_started(companion, 5)
    assert told == []
    assert "giving up" not in out.getvalue()
