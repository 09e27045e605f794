"""The context object (``$$`` in JSONPath, ``$states.context`` in JSONata)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from dirigent.asl.model import Json


@lru_cache(maxsize=1024)
def iso(moment: datetime) -> str:
    """AWS's timestamp text in the context object: UTC, millisecond precision, ``Z``.

    Cached: a state's entry is formatted again at every step of the state.
    ``isoformat`` truncates to the millisecond as AWS does.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """The facts about one execution that the context object exposes."""

    execution_arn: str
    name: str
    state_machine_arn: str
    state_machine_name: str
    start_time: datetime
    input: Json
    role_arn: str = "arn:aws:iam::000000000000:role/dirigent"
    redrive_count: int = 0


#: the parts of the context object that stay the same for a whole execution
Sections = tuple[dict[str, Any], dict[str, Any]]


def build(
    sections: Sections,
    *,
    state_name: str,
    entered_time: datetime,
    retry_count: int | None = None,
    task_token: str | None = None,
    map_item: tuple[int, Json] | None = None,
) -> dict[str, Any]:
    """The context object of one state. ``sections``: its execution's
    ``Execution`` and ``StateMachine`` parts (:func:`execution_sections`), shared
    between its states rather than rebuilt for each (context objects are never
    mutated, like every JSON value the core passes around)."""
    execution, machine = sections
    state: dict[str, Any] = {"Name": state_name, "EnteredTime": iso(entered_time)}
    if retry_count is not None:
        state["RetryCount"] = retry_count
    context: dict[str, Any] = {"Execution": execution, "StateMachine": machine, "State": state}
    if task_token is not None:
        context["Task"] = {"Token": task_token}
    if map_item is not None:
        context["Map"] = {"Item": {"Index": map_item[0], "Value": map_item[1]}}
    return context


def execution_sections(info: ExecutionInfo) -> Sections:
    """The ``Execution`` and ``StateMachine`` parts of an execution's context objects."""
    execution = {
        "Id": info.execution_arn,
        "Input": info.input,
        "StartTime": iso(info.start_time),
        "Name": info.name,
        "RoleArn": info.role_arn,
        "RedriveCount": info.redrive_count,
    }
    return execution, {"Id": info.state_machine_arn, "Name": info.state_machine_name}
