"""What each state type computes, separate from how the core sequences it.

Pure functions of a :class:`~dirigent.workflow.dataflow.Frame`: the Pass
result, the Choice rule that matches, how long a Wait lasts, a Task's timeouts,
a Fail state's error and cause, a Map's items and limits, a Catch's output.
They raise :class:`~dirigent.asl.failure.StatesFailure` with AWS's wording.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dirigent.asl import choice, failure, jsonata, jsonpath, payload, timestamps
from dirigent.asl.failure import StatesFailure
from dirigent.asl.jsontext import dumps
from dirigent.asl.model import (
    MISSING,
    Catcher,
    ChoiceRule,
    ChoiceState,
    FailState,
    Json,
    JsonataCondition,
    MapState,
    PassState,
    TaskState,
    WaitState,
)
from dirigent.workflow import context as ctx
from dirigent.workflow import dataflow
from dirigent.workflow.dataflow import Frame


def pass_result(state: PassState, frame: Frame, effective: Json) -> Json:
    if frame.is_jsonata:
        return MISSING
    if state.parameters is not MISSING:
        return payload.evaluate_template(state.parameters, frame.scope(effective), "Parameters")
    if state.result is not MISSING:
        return state.result
    return effective


def choose(state: ChoiceState, frame: Frame, effective: Json) -> ChoiceRule | None:
    for rule in state.choices:
        condition = rule.condition
        if isinstance(condition, JsonataCondition):
            if choice.jsonata_condition(condition, frame.bindings()):
                return rule
        elif choice.matches(condition, frame.scope(effective)):
            return rule
    return None


def rule_output(frame: Frame, template: Json) -> Json:
    """A JSONata Choice rule's own ``Output``."""
    return jsonata.evaluate_template(template, frame.bindings(), field="Output")


def _positive_int(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def wait_seconds(state: WaitState, frame: Frame, effective: Json, now: datetime) -> float:
    """Seconds until the Wait ends (0 when its timestamp has passed)."""
    if frame.is_jsonata:
        if state.seconds is not MISSING:
            value = jsonata.evaluate_template(state.seconds, frame.bindings(), field="Seconds")
            if not _positive_int(value) or value < 0:
                raise StatesFailure(
                    failure.QUERY_EVALUATION,
                    f"The expression '{state.seconds}' specified for the field 'Seconds' "
                    f"returned an unexpected value: {dumps(value)}",
                )
            return float(value)
        text = jsonata.evaluate_template(state.timestamp, frame.bindings(), field="Timestamp")
        try:
            return _until(text, now)
        except (timestamps.InvalidTimestamp, TypeError) as exc:
            raise StatesFailure(
                failure.QUERY_EVALUATION,
                "The Timestamp field cannot be parsed as an ISO-8601 extended offset "
                f"date-time format string: {text}",
            ) from exc
    if state.seconds is not MISSING:
        return float(state.seconds)
    if state.seconds_path is not None:
        value = dataflow.read_path(frame, state.seconds_path, effective, "SecondsPath")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _positive_int(value):
            raise StatesFailure(
                failure.RUNTIME,
                "The SecondsPath parameter cannot be parsed as a long value: "
                f"{state.seconds_path} == {_plain(value)}",
            )
        if value < 0:
            raise StatesFailure(
                failure.RUNTIME,
                "The SecondsPath parameter references a negative value: "
                f"{state.seconds_path} == {value}",
            )
        return float(value)
    if state.timestamp is not MISSING:
        return _until(state.timestamp, now)  # checked by the parser
    assert state.timestamp_path is not None
    value = dataflow.read_path(frame, state.timestamp_path, effective, "TimestampPath")
    try:
        return _until(value, now)
    except (timestamps.InvalidTimestamp, TypeError) as exc:
        raise StatesFailure(
            failure.RUNTIME,
            "The TimestampPath parameter does not reference a valid ISO-8601 extended "
            f"offset date-time format string: {state.timestamp_path} == {_plain(value)}",
        ) from exc


def _until(text: Json, now: datetime) -> float:
    """Seconds from ``now`` to the timestamp ``text`` (0 once it has passed)."""
    return max(0.0, (timestamps.parse_timestamp(text) - now).total_seconds())


def _plain(value: Json) -> str:
    return value if isinstance(value, str) else dumps(value)


def _seconds_field(
    frame: Frame, value: Json, path: str | None, name: str, effective: Json
) -> int | None:
    if value is not MISSING:
        if frame.is_jsonata and jsonata.is_expression(value):
            value = jsonata.evaluate_template(value, frame.bindings(), field=name)
        return int(value)
    if path is not None:
        found = dataflow.read_path(frame, path, effective, f"{name}Path")
        if not _positive_int(found) or found <= 0:
            raise StatesFailure(
                failure.RUNTIME,
                f'The {name}Path field refers to value "{_plain(found)}" which is not a '
                f"valid integer: {path}",
            )
        return int(found)
    return None


def timeout_seconds(state: TaskState, frame: Frame) -> int | None:
    return _seconds_field(
        frame, state.timeout_seconds, state.timeout_seconds_path, "TimeoutSeconds", frame.raw_input
    )


def heartbeat_seconds(state: TaskState, frame: Frame) -> int | None:
    return _seconds_field(
        frame,
        state.heartbeat_seconds,
        state.heartbeat_seconds_path,
        "HeartbeatSeconds",
        frame.raw_input,
    )


def fail_error_and_cause(state: FailState, frame: Frame) -> tuple[str | None, str | None]:
    def one(value: Json, path: str | None, name: str) -> str | None:
        if value is not MISSING:
            if frame.is_jsonata:
                value = jsonata.evaluate_template(value, frame.bindings(), field=name)
            return value if isinstance(value, str) else dumps(value)
        if path is not None:
            found = dataflow.read_path(frame, path, frame.raw_input, f"{name}Path")
            return found if isinstance(found, str) else dumps(found)
        return None

    return one(state.error, state.error_path, "Error"), one(state.cause, state.cause_path, "Cause")


# --------------------------------------------------------------------------- Map


@dataclass(frozen=True, slots=True)
class MapPlan:
    items: list[Json]
    max_concurrency: int
    tolerated_count: int | None
    tolerated_percentage: float | None


def map_items(state: MapState, frame: Frame, effective: Json) -> list[Json]:
    """The array a Map iterates over (``Items``/``ItemsPath``), before batching."""
    if frame.is_jsonata:
        if state.items is MISSING:
            items = frame.raw_input
            if not isinstance(items, list):
                raise StatesFailure(
                    failure.QUERY_EVALUATION,
                    f"Map state input must be an array but was: {dumps(items)}",
                )
            return items
        items = jsonata.evaluate_template(state.items, frame.bindings(), field="Items")
        if not isinstance(items, list):
            raise jsonata.unexpected_result_type(str(state.items), "Items", "array", items)
        return items
    if state.items_path is MISSING or state.items_path == "$":
        items = effective
    else:
        items = dataflow.read_path(frame, str(state.items_path), effective, "ItemsPath")
    if not isinstance(items, list):
        raise StatesFailure(
            failure.RUNTIME,
            f"Map state input must be an array but was: {dumps(items)}",
        )
    return items


def _integral(value: Json) -> Json:
    """AWS reads ``2.0`` and ``"2"`` found through a path as the integer 2."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _int_setting(
    frame: Frame, value: Json, path: str | None, name: str, effective: Json
) -> int | None:
    if value is not MISSING:
        if frame.is_jsonata and jsonata.is_expression(value):
            value = jsonata.evaluate_template(value, frame.bindings(), field=name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _positive_int(value):
            raise StatesFailure(
                failure.QUERY_EVALUATION if frame.is_jsonata else failure.RUNTIME,
                f'The {name} field refers to value "{_plain(value)}" which is not a valid integer',
            )
        return int(value)
    if path is not None:
        found = dataflow.read_path(frame, path, effective, f"{name}Path")
        found = _integral(found)
        if not _positive_int(found):
            raise StatesFailure(
                failure.RUNTIME,
                f'The {name}Path field refers to value "{_plain(found)}" which is not a '
                f"valid integer: {path}",
            )
        return int(found)
    return None


def map_concurrency(state: MapState, frame: Frame, effective: Json) -> int:
    """``MaxConcurrency`` (0 means no limit)."""
    value = _int_setting(
        frame, state.max_concurrency, state.max_concurrency_path, "MaxConcurrency", effective
    )
    return value or 0


def map_plan(
    state: MapState, frame: Frame, effective: Json, items: list[Json], concurrency: int
) -> MapPlan:
    """A Map's failure tolerance and its items after ``ItemBatcher``."""
    count = _int_setting(
        frame,
        state.tolerated_failure_count,
        state.tolerated_failure_count_path,
        "ToleratedFailureCount",
        effective,
    )
    percentage: float | None = None
    raw: Json = state.tolerated_failure_percentage
    if raw is not MISSING and frame.is_jsonata and jsonata.is_expression(raw):
        raw = jsonata.evaluate_template(raw, frame.bindings(), field="ToleratedFailurePercentage")
    if raw is MISSING and state.tolerated_failure_percentage_path is not None:
        raw = dataflow.read_path(
            frame,
            state.tolerated_failure_percentage_path,
            effective,
            "ToleratedFailurePercentagePath",
        )
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            raw = float(raw)
    if raw is not MISSING:
        if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 <= raw <= 100:
            raise StatesFailure(
                failure.RUNTIME, "ToleratedFailurePercentage must be between 0 and 100."
            )
        percentage = float(raw)
    items = _batched(state, frame, effective, items)
    return MapPlan(items, concurrency, count, percentage)


def _batched(state: MapState, frame: Frame, effective: Json, items: list[Json]) -> list[Json]:
    """``ItemBatcher``: group items into ``{"Items": [...], ...BatchInput}`` batches."""
    batcher: Any = state.item_batcher
    if batcher is MISSING or not isinstance(batcher, dict):
        return items
    size = batcher.get("MaxItemsPerBatch")
    if size is None and "MaxItemsPerBatchPath" in batcher:
        size = dataflow.read_path(
            frame, batcher["MaxItemsPerBatchPath"], effective, "MaxItemsPerBatchPath"
        )
    max_bytes = batcher.get("MaxInputBytesPerBatch")
    batch_input = batcher.get("BatchInput", {})
    if frame.is_jsonata and jsonata.is_expression(batch_input):
        batch_input = jsonata.evaluate_template(batch_input, frame.bindings(), field="BatchInput")
    elif not frame.is_jsonata and isinstance(batch_input, dict):
        batch_input = payload.evaluate_template(batch_input, frame.scope(effective), "BatchInput")
    limit = int(size) if size else math.inf
    batches: list[Json] = []
    current: list[Json] = []
    for item in items:
        candidate = [*current, item]
        too_big = max_bytes is not None and len(dumps(candidate)) > int(max_bytes)
        if current and (len(current) >= limit or too_big):
            batches.append({**batch_input, "Items": current} if batch_input else {"Items": current})
            current = [item]
        else:
            current = candidate
    if current:
        batches.append({**batch_input, "Items": current} if batch_input else {"Items": current})
    return batches


def map_item_input(state: MapState, frame: Frame, effective: Json, index: int, item: Json) -> Json:
    """One iteration's input: the item, or ``ItemSelector`` evaluated for it."""
    selector = state.item_selector if state.item_selector is not MISSING else state.parameters
    if selector is MISSING:
        return item
    item_context = dict(frame.context)
    item_context["Map"] = {"Item": {"Index": index, "Value": item}}
    item_frame = Frame(frame.state, frame.raw_input, item_context, frame.variables, frame.entropy)
    if frame.is_jsonata:
        return jsonata.evaluate_template(selector, item_frame.bindings(), field="ItemSelector")
    field = "ItemSelector" if state.item_selector is not MISSING else "Parameters"
    return payload.evaluate_template(selector, item_frame.scope(effective), field)


# --------------------------------------------------------------------------- Catch


def catch_output(
    frame: Frame, catcher: Catcher, error: str | None, cause: str | None
) -> tuple[Json, dict[str, Json]]:
    """The output a Catch passes to its ``Next`` state, and what it assigns."""
    error_output = dataflow.error_output(error, cause)
    if frame.is_jsonata:
        bindings = frame.bindings(error_output=error_output)
        assigned: dict[str, Json] = {}
        if catcher.assign is not MISSING:
            values = jsonata.evaluate_template(catcher.assign, bindings, field="Assign")
            assigned = values if isinstance(values, dict) else {}
        if catcher.output is MISSING:
            return error_output, assigned
        return jsonata.evaluate_template(catcher.output, bindings, field="Output"), assigned
    assigned = dataflow.assignments(frame, catcher.assign, error_output)
    out = jsonpath.apply_result_path(frame.raw_input, error_output, catcher.result_path)
    return out, assigned


__all__ = [
    "MapPlan",
    "catch_output",
    "choose",
    "ctx",
    "fail_error_and_cause",
    "heartbeat_seconds",
    "map_item_input",
    "map_plan",
    "pass_result",
    "rule_output",
    "timeout_seconds",
    "wait_seconds",
]
