"""The API's thread pool: calls leave the event loop and come back with their answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dirigent.api.pool import ThreadPool


def test_a_call_runs_on_a_pool_thread_and_its_value_comes_back() -> None:
    pool = ThreadPool(2, "t")

    async def main() -> str:
        return await pool.submit(lambda: threading.current_thread().name)

    try:
        assert asyncio.run(main()).startswith("t_")
    finally:
        pool.close()


def test_an_exception_in_the_call_is_raised_where_it_is_awaited() -> None:
    pool = ThreadPool(1, "t")

    def fail() -> None:
        raise LookupError("no such execution")

    async def main() -> None:
        await pool.submit(fail)

    try:
        with pytest.raises(LookupError, match="no such execution"):
            asyncio.run(main())
    finally:
        pool.close()


def test_a_blocked_call_does_not_hold_up_the_next_while_the_pool_has_room() -> None:
    pool = ThreadPool(4, "t")
    release = threading.Event()

    async def main() -> str:
        blocked = pool.submit(release.wait, 10)
        await asyncio.sleep(0.05)  # the first call is now running, and waits
        second = await asyncio.wait_for(pool.submit(lambda: "quick"), 5)
        release.set()
        await blocked
        # A thread that finished is reused rather than a new one started.
        await pool.submit(lambda: None)
        return second

    try:
        assert asyncio.run(main()) == "quick"
        assert pool.threads == 2
    finally:
        pool.close()


def test_calls_beyond_the_size_wait_for_a_free_thread() -> None:
    pool = ThreadPool(1, "t")
    release = threading.Event()
    order: list[str] = []

    async def main() -> None:
        first = pool.submit(lambda: (release.wait(10), order.append("first")))
        second = pool.submit(lambda: order.append("second"))
        await asyncio.sleep(0.05)
        assert order == []  # the only thread is busy with the first call
        release.set()
        await asyncio.gather(first, second)

    try:
        asyncio.run(main())
        assert order == ["first", "second"]
    finally:
        pool.close()


def test_an_abandoned_call_leaves_the_thread_serving_the_next() -> None:
    pool = ThreadPool(1, "t")
    release = threading.Event()

    async def main() -> str:
        abandoned = pool.submit(release.wait, 10)
        abandoned.cancel()  # the client went away while the engine worked
        release.set()
        return await asyncio.wait_for(pool.submit(lambda: "next"), 5)

    try:
        assert asyncio.run(main()) == "next"
    finally:
        pool.close()


def test_close_cancels_queued_calls_and_refuses_new_ones() -> None:
    pool = ThreadPool(1, "t")
    release = threading.Event()

    async def main() -> None:
        running = pool.submit(release.wait, 10)
        queued = pool.submit(lambda: "never")
        await asyncio.sleep(0.05)
        pool.close()
        release.set()
        await running
        with pytest.raises(asyncio.CancelledError):
            await queued
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(lambda: None)

    asyncio.run(main())
