"""A state machine as a graph for drawing, and an execution's history as per-state status.

:func:`machine_graph` turns a parsed machine into nodes (states, with the
Parallel branch or Map processor that contains them) and edges (``next``,
``choice``, ``default``, ``catch``). :func:`state_runs` folds an execution's
history events into one entry per visit of a state, with its input, output,
status, error and cause; :func:`state_status` reduces that to the latest
status per state, which is what a dashboard colours a node by.

Pure functions over plain data: this module must never touch the engine, the
store or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dirigent.asl.model import ChoiceState, MapState, ParallelState, StateMachine


def machine_graph(machine: StateMachine) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    _walk(machine, None, None, nodes, edges)
    return {"startAt": machine.start_at, "nodes": nodes, "edges": edges}


def _walk(
    machine: StateMachine,
    parent: str | None,
    branch: int | None,
    nodes: list[dict[str, Any]],
    edges: list[dict[str, Any]],
) -> None:
    for name, state in machine.states.items():
        nodes.append(
            {
                "id": name,
                "type": state.type,
                "parent": parent,
                "branch": branch,
                "start": name == machine.start_at,
                "end": state.end or state.type in ("Succeed", "Fail"),
                "comment": state.comment,
            }
        )
        if state.next is not None:
            edges.append({"from": name, "to": state.next, "kind": "next", "label": None})
        if isinstance(state, ChoiceState):
            for index, rule in enumerate(state.choices):
                edges.append(
                    {"from": name, "to": rule.next, "kind": "choice", "label": f"rule {index + 1}"}
                )
            if state.default is not None:
                edges.append({"from": name, "to": state.default, "kind": "default", "label": None})
        edges.extend(
            {
                "from": name,
                "to": catcher.next,
                "kind": "catch",
                "label": ", ".join(catcher.error_equals),
            }
            for catcher in getattr(state, "catch", ())
        )
        if isinstance(state, ParallelState):
            for index, sub in enumerate(state.branches):
                _walk(sub, name, index, nodes, edges)
        elif isinstance(state, MapState):
            _walk(state.item_processor, name, None, nodes, edges)


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


_FAILURE_SUFFIXES = ("Failed", "TimedOut", "Aborted")


def state_runs(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per state visit, in the order the states were entered.

    ``events`` are history events in the ``GetExecutionHistory`` shape.
    A failure event (``TaskFailed``, ``LambdaFunctionTimedOut``...) belongs to
    the visit whose chain of ``previousEventId`` it continues; a visit never
    exited is ``RUNNING`` while the execution runs and takes the execution's
    end status otherwise.
    """
    runs: list[dict[str, Any]] = []
    by_event: dict[int, dict[str, Any]] = {}
    open_runs: dict[str, list[dict[str, Any]]] = {}
    ended: str | None = None
    for event in events:
        kind: str = event["type"]
        details = _details(event)
        owner = by_event.get(event.get("previousEventId", 0))
        if kind.endswith("StateEntered"):
            run = {
                "name": details.get("name"),
                "type": kind.removesuffix("StateEntered"),
                "status": "RUNNING",
                "enteredAt": event["timestamp"],
                "exitedAt": None,
                "input": details.get("input"),
                "output": None,
                "error": None,
                "cause": None,
            }
            runs.append(run)
            open_runs.setdefault(str(run["name"]), []).append(run)
            by_event[event["id"]] = run
        elif kind.endswith("StateExited"):
            stack = open_runs.get(str(details.get("name")), [])
            if stack:
                run = stack.pop()
                run["exitedAt"] = event["timestamp"]
                run["output"] = details.get("output")
                run["status"] = "CAUGHT_ERROR" if run["error"] else "SUCCEEDED"
                by_event[event["id"]] = run
        elif kind == "ExecutionRedriven":
            ended = None  # running again: unexited visits are live once more
        elif kind.startswith("Execution") and kind != "ExecutionStarted":
            ended = kind.removeprefix("Execution").upper()
        elif owner is not None:
            by_event[event["id"]] = owner
            if kind.endswith(_FAILURE_SUFFIXES) and "error" in details:
                owner["error"] = details.get("error")
                owner["cause"] = details.get("cause")
    for run in runs:
        if run["status"] == "RUNNING" and ended is not None:
            run["status"] = "FAILED" if ended in ("FAILED", "TIMEDOUT") else ended
    return runs


def state_status(runs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The status of each state's latest visit."""
    latest: dict[str, str] = {}
    for run in runs:
        latest[str(run["name"])] = str(run["status"])
    return latest
