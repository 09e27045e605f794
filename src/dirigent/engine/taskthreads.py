"""The threads that run a worker's tasks: a fixed set, fed through one queue.

Each task the worker runs was already leased in the store, and its result
reaches the worker through the worker's own bookkeeping: nothing waits on a
per-task future. ``ThreadPoolExecutor`` makes one anyway (a future, its
condition and lock, a work item) for every task, on the worker loop's thread,
which is the engine's busiest. Here a task costs one queue put.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("dirigent.engine")

T = TypeVar("T")

#: what a thread takes from the queue to know it is to stop
_STOP = object()


class TaskThreads(Generic[T]):
    """``size`` threads calling ``run`` on each item submitted, in submission order.

    The threads start with the first item. ``run`` raising anything is logged
    and the thread carries on with the next item.
    """

    def __init__(self, run: Callable[[T], None], *, size: int, name: str) -> None:
        if size < 1:
            raise ValueError(f"a worker needs at least one task thread, not {size}")
        self._run = run
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, item: T) -> bool:
        """Queue ``item``; ``False`` (and nothing queued) once :meth:`shutdown` began."""
        with self._lock:
            if self._closed:
                return False
            if not self._threads:
                self._start_threads()
            # Under the lock: shutdown, which takes it first, drains every item
            # put before it, and none comes after.
            self._queue.put(item)
        return True

    def _start_threads(self) -> None:
        for index in range(self._size):
            thread = threading.Thread(target=self._serve, name=f"{self._name}_{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self) -> list[T]:
        """Stop once the running items are done; the items not yet started are
        returned, not run, and later ones refused."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        # Only items are queued before this point: the stop markers come after.
        left: list[T] = []
        while True:
            try:
                left.append(self._queue.get_nowait())  # type: ignore[arg-type]
            except queue.Empty:
                break
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join()
        return left

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._run(item)  # type: ignore[arg-type]
            except BaseException:  # even SystemExit: a thread lost is a pool shrunk for good
                log.exception("a task thread's work failed")
