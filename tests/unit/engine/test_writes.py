"""A batch of transitions' rows goes to the store in one pipelined block, or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from dirigent.engine.transitions import Writes
from dirigent.store.port import Transaction
from dirigent.store.records import EventRecord, TaskRecord


class RecordingTransaction:
    """Remembers the calls a flush makes, in order; writes nothing."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        self.calls.append("pipeline")
        yield
        self.calls.append("end of pipeline")

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            rows = args[0] if args else ()
            self.calls.append(f"{name}({len(rows)})")

        return call


def test_flushing_nothing_opens_no_pipeline_and_writes_nothing() -> None:
    tx = RecordingTransaction()
    Writes().flush(cast(Transaction, tx))
    assert tx.calls == []


def test_rows_go_in_one_pipeline_tasks_put_before_done_ones_are_deleted() -> None:
    tx = RecordingTransaction()
    writes = Writes()
    writes.events.append(EventRecord("arn", 1, 0, 0.0, "ExecutionStarted", "{}"))
    writes.tasks.append(TaskRecord("t1", "arn", "function", "{}", "running", 0.0))
    writes.done.append("t1")
    writes.flush(cast(Transaction, tx))
    assert tx.calls[0] == "pipeline"
    assert tx.calls[-1] == "end of pipeline"
    written = [call for call in tx.calls[1:-1] if not call.endswith("(0)")]
    assert written == ["append_events(1)", "put_tasks(1)", "delete_tasks(1)"]
    # and the batch is empty afterwards: a second flush writes nothing
    tx.calls.clear()
    writes.flush(cast(Transaction, tx))
    assert tx.calls == []
