"""TaskThreads: a worker's task threads, fed through one queue."""

from __future__ import annotations

import logging
import threading

import pytest

from dirigent.engine.taskthreads import TaskThreads


def test_every_item_submitted_is_run_once() -> None:
    seen: list[int] = []
    lock = threading.Lock()
    all_seen = threading.Event()

    def run(item: int) -> None:
        with lock:
            seen.append(item)
            if len(seen) == 500:
                all_seen.set()

    threads = TaskThreads(run, size=3, name="t")
    for item in range(500):
        threads.submit(item)
    assert all_seen.wait(10)
    assert threads.shutdown() == []
    assert sorted(seen) == list(range(500))


def test_shutdown_waits_for_running_items_and_returns_those_not_started() -> None:
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def run(item: str) -> None:
        if item == "slow":
            started.set()
            release.wait(5)
        done.append(item)

    threads = TaskThreads(run, size=1, name="t")
    threads.submit("slow")
    assert started.wait(5)
    threads.submit("queued-1")
    threads.submit("queued-2")
    threading.Timer(0.05, release.set).start()
    left = threads.shutdown()
    assert done == ["slow"]
    assert left == ["queued-1", "queued-2"]


@pytest.mark.parametrize("failure", [RuntimeError("boom"), SystemExit(3)], ids=type)
def test_a_failing_item_is_logged_and_the_thread_goes_on(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    # SystemExit too: a thread lost to one would shrink the pool for good.
    done = threading.Event()

    def run(item: str) -> None:
        if item == "bad":
            raise failure
        done.set()

    threads = TaskThreads(run, size=1, name="t")
    with caplog.at_level(logging.ERROR, logger="dirigent.engine"):
        threads.submit("bad")
        threads.submit("good")
        assert done.wait(5)
    threads.shutdown()
    assert any("task thread" in record.message for record in caplog.records)


def test_no_threads_start_before_the_first_item() -> None:
    before = threading.active_count()
    ran = threading.Event()
    threads: TaskThreads[int] = TaskThreads(lambda _item: ran.set(), size=4, name="idle")
    assert threading.active_count() == before
    threads.submit(1)
    assert threading.active_count() == before + 4
    assert ran.wait(5)
    assert threads.shutdown() == []
    assert threading.active_count() == before


def test_a_pool_without_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one task thread"):
        TaskThreads(lambda _item: None, size=0, name="none")


def test_items_submitted_after_shutdown_are_refused_not_lost_silently() -> None:
    ran: list[int] = []
    threads = TaskThreads(ran.append, size=2, name="t")
    assert threads.submit(1) is True
    left = threads.shutdown()
    assert threads.submit(2) is False
    # The first was either run or handed back by shutdown; the second neither.
    assert ran + left == [1]
