"""ExecutionRecord.checkpointed: the row a transition writes, field for field."""

from __future__ import annotations

import dataclasses

from dirigent.store.records import ExecutionRecord


def _every_field_distinct() -> ExecutionRecord:
    values: dict[str, object] = {}
    for index, item in enumerate(dataclasses.fields(ExecutionRecord)):
        kind = str(item.type)
        values[item.name] = float(index) if "float" in kind else (
            index if "int" in kind else f"{item.name}-{index}"
        )  # fmt: skip
    return ExecutionRecord(**values)  # type: ignore[arg-type]


def test_a_running_checkpoint_changes_status_snapshot_and_count_only() -> None:
    record = _every_field_distinct()
    assert record.checkpointed("RUNNING", "{}", 7) == dataclasses.replace(
        record, status="RUNNING", snapshot="{}", event_count=7
    )


def test_a_finishing_checkpoint_also_writes_the_outcome() -> None:
    record = _every_field_distinct()
    finished = record.checkpointed(
        "FAILED", "{}", 9, output=None, error="E", cause="C", stopped_at=5.0, finished=True
    )
    assert finished == dataclasses.replace(
        record, status="FAILED", snapshot="{}", event_count=9, output=None, error="E",
        cause="C", stopped_at=5.0,
    )  # fmt: skip
