"""The actions the engine does not offer itself, built from what it does offer.

- ``ValidateStateMachineDefinition``: the ASL parser's diagnostics in AWS's shape.
- ``TestState``: one state wrapped into a machine of its own and run in-process
  (virtual time, the engine's registered functions), reported as AWS reports it.
- ``ListMapRuns`` / ``DescribeMapRun``: read from the ``MapRun*`` events the
  workflow core writes into an execution's history. Dirigent runs a distributed
  Map's items inside the parent execution without per-item events, so there
  are no child executions and item outcomes are not recorded: counts put every
  item under the run's status, ``executionCounts`` mirror ``itemCounts``, and
  concurrency and tolerance come from the definition where it states them
  literally. ``UpdateMapRun`` is not offered.

This module must never write to the store: each action here only reads, or
runs in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dirigent.asl.model import MapState, StateMachine
from dirigent.asl.parser import parse_definition
from dirigent.engine import Engine
from dirigent.engine.catalog import when
from dirigent.engine.errors import (
    ExecutionDoesNotExist,
    InvalidArn,
    InvalidDefinition,
    InvalidExecutionInput,
    ResourceNotFound,
    ValidationException,
)
from dirigent.engine.functions import InvocationContext
from dirigent.errors import DefinitionError
from dirigent.store.records import EventRecord
from dirigent.testing.local import run_local

_TESTED = "TestState"


def validate_state_machine_definition(request: Mapping[str, Any]) -> dict[str, Any]:
    machine_type = request.get("type", "STANDARD")
    if machine_type not in ("STANDARD", "EXPRESS"):
        raise ValidationException("type: expected STANDARD or EXPRESS")
    limit = request.get("maxResults") or 100
    try:
        parse_definition(request["definition"], machine_type=machine_type)
    except DefinitionError as exc:
        diagnostics = [
            {
                "severity": "ERROR",
                "code": "SCHEMA_VALIDATION_FAILED",
                "message": d.message,
                "location": d.pointer or "/",
            }
            for d in exc.diagnostics
        ]
        return {
            "result": "FAIL",
            "diagnostics": diagnostics[:limit],
            "truncated": len(diagnostics) > limit,
        }
    return {"result": "OK", "diagnostics": [], "truncated": False}


# --------------------------------------------------------------------------- TestState


def _targets(state: Mapping[str, Any]) -> list[str]:
    names = [state.get("Next"), state.get("Default")]
    names += [rule.get("Next") for rule in state.get("Choices", []) if isinstance(rule, dict)]
    names += [c.get("Next") for c in state.get("Catch", []) if isinstance(c, dict)]
    return [n for n in dict.fromkeys(names) if isinstance(n, str)]


def _one_state_machine(state: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A machine that runs ``state`` first; each state it may go to is an ending Pass."""
    targets = _targets(state)
    tested = _TESTED
    while tested in targets:
        tested += "_"
    states: dict[str, Any] = {tested: dict(state)}
    for target in targets:
        states[target] = {"Type": "Pass", "End": True}
    machine: dict[str, Any] = {"StartAt": tested, "States": states}
    if "QueryLanguage" in state:
        machine["QueryLanguage"] = state["QueryLanguage"]
    return machine, tested


def _functions(engine: Engine) -> dict[str, Callable[[Any], Any]]:
    def bind(name: str) -> Callable[[Any], Any]:
        def call(payload: Any) -> Any:
            function, wants_context = engine.functions.resolve(name)
            if not wants_context:
                return function(payload)
            context = InvocationContext(name, "test-state", _TESTED, 1, f"test-state:{name}")
            return function(payload, context)

        return call

    return {name: bind(name) for name in engine.functions.names()}


def test_state(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    try:
        state = json.loads(request["definition"])
    except ValueError as exc:
        raise InvalidDefinition(f"Invalid State Definition: '{exc}'") from exc
    if not isinstance(state, dict) or not isinstance(state.get("Type"), str):
        raise InvalidDefinition("Invalid State Definition: a state object with a Type is needed")
    try:
        execution_input = json.loads(request.get("input", "{}"))
    except ValueError as exc:
        raise InvalidExecutionInput(f"Invalid input: '{exc}'") from exc
    machine, tested = _one_state_machine(state)
    try:
        parsed = parse_definition(machine)
    except DefinitionError as exc:
        details = "; ".join(str(d) for d in exc.diagnostics[:5])
        raise InvalidDefinition(f"Invalid State Definition: '{details}'") from exc
    run = run_local(parsed, execution_input, functions=_functions(engine))
    events = [event.to_aws() for event in run.history]
    entered = [e for e in events if e["type"].endswith("StateEntered")]
    next_state = entered[1]["stateEnteredEventDetails"]["name"] if len(entered) > 1 else None
    failures = [
        e for e in events if e["type"].endswith("Failed") and e["type"] != "ExecutionFailed"
    ]
    response: dict[str, Any] = {}
    exited = [
        e
        for e in events
        if e["type"].endswith("StateExited") and e["stateExitedEventDetails"]["name"] == tested
    ]
    if run.status == "SUCCEEDED":
        caught = bool(failures) and state.get("Type") in ("Task", "Parallel", "Map")
        response["status"] = "CAUGHT_ERROR" if caught and next_state else "SUCCEEDED"
        if caught:
            failure: dict[str, Any] = next(
                (v for k, v in failures[-1].items() if k.endswith("Details")), {}
            )
            response["error"], response["cause"] = failure.get("error"), failure.get("cause")
        output = exited[0]["stateExitedEventDetails"].get("output") if exited else None
        response["output"] = output if output is not None else json.dumps(run.output)
    else:
        response["status"] = "FAILED"
        response["error"], response["cause"] = run.error, run.cause
    if next_state is not None:
        response["nextState"] = next_state
    response["inspectionData"] = {"input": json.dumps(execution_input)}
    return {k: v for k, v in response.items() if v is not None}


# --------------------------------------------------------------------------- map runs


def _history(engine: Engine, execution_arn: str) -> list[EventRecord]:
    events: list[EventRecord] = []
    with engine.store.transaction() as tx:
        record = engine.executions.execution(tx, execution_arn)
        after = 0
        while True:
            page = tx.list_events(record.arn, after_id=after, limit=1000, reverse=False)
            events += page
            if len(page) < 1000:
                return events
            after = page[-1].id


def _map_runs(events: list[EventRecord]) -> Iterator[tuple[EventRecord, EventRecord | None]]:
    """Each ``MapRunStarted`` with the ``MapRunSucceeded``/``Failed``/``Aborted`` that ends it.

    The core emits a map run's end on the same thread as its start, so the end
    is the first ``MapRun*`` end event whose chain of ``previousEventId`` leads
    back to the start without crossing another ``MapRunStarted``.
    """
    by_id = {e.id: e for e in events}
    ends = [e for e in events if e.type in ("MapRunSucceeded", "MapRunFailed", "MapRunAborted")]
    for start in (e for e in events if e.type == "MapRunStarted"):
        end = None
        for candidate in ends:
            node = by_id.get(candidate.previous_id)
            while node is not None and node.id > start.id and node.type != "MapRunStarted":
                node = by_id.get(node.previous_id)
            if candidate.id > start.id and node is not None and node.id == start.id:
                end = candidate
                break
        yield start, end


def _execution_of(engine: Engine, map_run_arn: object) -> str:
    if not isinstance(map_run_arn, str):
        raise InvalidArn("Invalid Arn: 'mapRunArn is required'")
    engine.arns.parse(map_run_arn, ("mapRun",))
    base = map_run_arn.split("/", 1)[0]
    return base.replace(":mapRun:", ":execution:", 1)


def list_map_runs(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    arn = request["executionArn"]
    events = _history(engine, arn)
    with engine.store.transaction() as tx:
        record = engine.executions.execution(tx, arn)
    runs = []
    for start, end in _map_runs(events):
        item: dict[str, Any] = {
            "executionArn": arn,
            "mapRunArn": json.loads(start.details)["mapRunArn"],
            "stateMachineArn": record.machine_arn,
            "startDate": when(start.timestamp),
        }
        if end is not None:
            item["stopDate"] = when(end.timestamp)
        runs.append(item)
    return {"mapRuns": runs}


def _map_state(machine: StateMachine, name: str) -> MapState | None:
    for state in machine.states.values():
        if isinstance(state, MapState):
            if state.name == name:
                return state
            found = _map_state(state.item_processor, name)
            if found is not None:
                return found
        for branch in getattr(state, "branches", ()):
            found = _map_state(branch, name)
            if found is not None:
                return found
    return None


def _count(events: list[EventRecord], start: EventRecord, status: str) -> dict[str, int]:
    """Item counts as far as the history tells them.

    The core runs a distributed Map's items silently (no per-item events), so
    only the item total (``MapStateStarted``'s ``length``) and the run's end are
    known: every item is counted under the run's status. A run that failed with
    tolerated failures, or one half done, is therefore reported coarsely.
    """
    total = 0
    for event in events:
        if event.type == "MapStateStarted" and event.id < start.id:
            total = int(json.loads(event.details).get("length", 0))
    counts = dict.fromkeys(
        (
            "pending",
            "running",
            "succeeded",
            "failed",
            "timedOut",
            "aborted",
            "resultsWritten",
            "failuresNotRedrivable",
            "pendingRedrive",
        ),
        0,
    )
    key = {"RUNNING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed"}.get(
        status, "aborted"
    )
    counts[key] = total
    counts["total"] = total
    if status == "SUCCEEDED":
        counts["resultsWritten"] = total
    return counts


def describe_map_run(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    map_run_arn = request["mapRunArn"]
    execution_arn = _execution_of(engine, map_run_arn)
    try:
        events = _history(engine, execution_arn)
    except ExecutionDoesNotExist as exc:
        raise ResourceNotFound(f"Resource not found: '{map_run_arn}'") from exc
    for start, end in _map_runs(events):
        if json.loads(start.details).get("mapRunArn") != map_run_arn:
            continue
        with engine.store.transaction() as tx:
            record = engine.executions.execution(tx, execution_arn)
        state_name = map_run_arn.split("/", 1)[1].rsplit(":", 1)[0]
        state = _map_state(parse_definition(record.definition), state_name)
        concurrency = state.max_concurrency if state is not None else 0
        status = {
            None: "RUNNING",
            "MapRunSucceeded": "SUCCEEDED",
            "MapRunFailed": "FAILED",
            "MapRunAborted": "ABORTED",
        }[end.type if end else None]
        if status == "RUNNING" and record.status != "RUNNING":
            status = "ABORTED" if record.status == "ABORTED" else "FAILED"
        counts = _count(events, start, status)
        described: dict[str, Any] = {
            "mapRunArn": map_run_arn,
            "executionArn": execution_arn,
            "status": status,
            "startDate": when(start.timestamp),
            "maxConcurrency": concurrency if isinstance(concurrency, int) else 0,
            "toleratedFailurePercentage": _number(state, "tolerated_failure_percentage"),
            "toleratedFailureCount": int(_number(state, "tolerated_failure_count")),
            "itemCounts": counts,
            "executionCounts": counts,
            "redriveCount": record.redrive_count,
        }
        if end is not None:
            described["stopDate"] = when(end.timestamp)
        return described
    raise ResourceNotFound(f"Resource not found: '{map_run_arn}'")


def _number(state: MapState | None, attribute: str) -> float:
    value = getattr(state, attribute, 0) if state is not None else 0
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
