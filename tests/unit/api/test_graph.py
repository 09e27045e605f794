"""The drawing graph of a machine and the per-state view of a history."""

from __future__ import annotations

from typing import Any

from dirigent.api.graph import machine_graph, state_runs, state_status
from dirigent.asl.parser import parse_definition

MACHINE = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Work"}],
            "Default": "Nope",
        },
        "Work": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nope"}],
            "Next": "Done",
        },
        "Nope": {"Type": "Fail", "Error": "No"},
        "Done": {"Type": "Succeed"},
    },
}


def test_the_graph_has_every_state_including_branch_states() -> None:
    graph = machine_graph(parse_definition(MACHINE))
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert set(nodes) == {"Check", "Work", "Inner", "Nope", "Done"}
    assert nodes["Inner"]["parent"] == "Work"
    assert nodes["Inner"]["branch"] == 0
    assert nodes["Check"]["start"]
    assert nodes["Done"]["end"]


def test_the_graph_has_choice_default_catch_and_next_edges() -> None:
    graph = machine_graph(parse_definition(MACHINE))
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert edges == {
        ("Check", "Work", "choice"),
        ("Check", "Nope", "default"),
        ("Work", "Nope", "catch"),
        ("Work", "Done", "next"),
    }


def _event(id_: int, kind: str, prev: int, **details: Any) -> dict[str, Any]:
    key = (
        "stateEnteredEventDetails"
        if kind.endswith("StateEntered")
        else "stateExitedEventDetails"
        if kind.endswith("StateExited")
        else kind[0].lower() + kind[1:] + "EventDetails"
    )
    event: dict[str, Any] = {"id": id_, "previousEventId": prev, "type": kind, "timestamp": id_}
    if details:
        event[key] = details
    return event


def test_state_runs_carry_input_output_and_status() -> None:
    history = [
        _event(1, "ExecutionStarted", 0, input="{}"),
        _event(2, "PassStateEntered", 1, name="A", input='{"a":1}'),
        _event(3, "PassStateExited", 2, name="A", output='{"b":2}'),
        _event(4, "TaskStateEntered", 3, name="T", input='{"b":2}'),
        _event(5, "TaskScheduled", 4, resource="r"),
        _event(6, "TaskFailed", 5, error="Boom", cause="why"),
        _event(7, "ExecutionFailed", 6, error="Boom", cause="why"),
    ]
    runs = state_runs(history)
    assert [(r["name"], r["status"]) for r in runs] == [("A", "SUCCEEDED"), ("T", "FAILED")]
    assert runs[0]["input"] == '{"a":1}'
    assert runs[0]["output"] == '{"b":2}'
    assert (runs[1]["error"], runs[1]["cause"]) == ("Boom", "why")


def test_a_state_still_entered_while_the_execution_runs_is_running() -> None:
    history = [
        _event(1, "ExecutionStarted", 0),
        _event(2, "WaitStateEntered", 1, name="W", input="{}"),
    ]
    assert state_status(state_runs(history)) == {"W": "RUNNING"}


def test_the_latest_visit_of_a_looping_state_decides_its_status() -> None:
    history = [
        _event(1, "ExecutionStarted", 0),
        _event(2, "PassStateEntered", 1, name="L", input="{}"),
        _event(3, "PassStateExited", 2, name="L", output="{}"),
        _event(4, "PassStateEntered", 3, name="L", input="{}"),
    ]
    runs = state_runs(history)
    assert len(runs) == 2
    assert state_status(runs) == {"L": "RUNNING"}
