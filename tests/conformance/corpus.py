"""Loading and judging the ASL conformance corpus recorded on AWS.

The corpus lives outside the repository (``<repo>/../shared/conformance/asl``,
or ``$DIRIGENT_ASL_CORPUS``). Cases are run through the same code path as
``dirigent run``: a MockConfigFile built from the Lambda invocations AWS
recorded, virtual time, and :func:`dirigent.testing.local.run_local`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def corpus_root() -> Path:
    root = Path(os.environ.get("DIRIGENT_ASL_CORPUS", REPO.parent / "shared/conformance/asl"))
    if not (root / "dev").is_dir():
        raise RuntimeError(
            f"the ASL conformance corpus is missing at {root}; set DIRIGENT_ASL_CORPUS"
        )
    return root


@dataclass(frozen=True)
class Case:
    id: str
    path: Path

    def load(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def has(self, name: str) -> bool:
        return (self.path / name).exists()


def dev_cases() -> list[Case]:
    root = corpus_root() / "dev"
    return [Case(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()]


# --------------------------------------------------------------------------- mocks


def mock_config(case: Case, machine_name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A MockConfigFile and Lambda doubles for the case's recorded Lambda functions.

    Recorded invocations become per-state responses in the order AWS saw them;
    the doubles (identity, constant, raise) answer invocations AWS did not list
    (those inside distributed Map runs).
    """
    if not case.has("mocks.json"):
        return None
    mocks = case.load("mocks.json")
    per_state: dict[str, list[dict[str, Any]]] = {}
    for record in mocks["recorded_invocations"]:
        event = record["event"]
        if event.endswith("Succeeded"):
            per_state.setdefault(record["state"], []).append({"Return": record["output"]})
        elif event.endswith("Failed"):
            cause = record.get("cause")
            if cause is not None and not isinstance(cause, str):
                # the recorder kept a JSON cause parsed; Lambda sends it as text
                cause = json.dumps(cause)
            throw = {"Error": record.get("error"), "Cause": cause}
            per_state.setdefault(record["state"], []).append(
                {"Throw": {k: v for k, v in throw.items() if v is not None}}
            )
    responses = {
        f"{state}Responses": {str(i): r for i, r in enumerate(entries)}
        for state, entries in per_state.items()
    }
    cases = {"Recorded": {state: f"{state}Responses" for state in per_state}}
    config = {"StateMachines": {machine_name: {"TestCases": cases}}, "MockedResponses": responses}
    return config, mocks["lambda_functions"]


class LambdaRaised(Exception):
    pass


def lambda_doubles(functions: dict[str, Any]) -> dict[str, Any]:
    doubles: dict[str, Any] = {}
    for name, spec in functions.items():
        behavior = spec["behavior"]
        if behavior == "identity":
            doubles[name] = lambda event: event
        elif behavior == "constant":
            value = spec.get("value")
            doubles[name] = lambda event, value=value: value
        else:
            message = spec.get("error_message", "")
            error_type = spec.get("error_type", "Exception")

            def raise_(event: Any, message: str = message, error_type: str = error_type) -> Any:
                raise type(error_type, (Exception,), {})(message)

            doubles[name] = raise_
    return doubles


# --------------------------------------------------------------------------- judging


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _drop_pointer(document: Any, pointer: str) -> None:
    parts = [_unescape(p) for p in pointer.split("/")[1:]]
    node = document
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return
    last = parts[-1] if parts else None
    if isinstance(node, dict) and last in node:
        node[last] = "<masked>"
    elif isinstance(node, list) and last is not None and last.isdigit() and int(last) < len(node):
        node[int(last)] = "<masked>"


def _normalize(value: Any) -> Any:
    """Numbers compare by value: 1 and 1.0 are the same JSON number."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return {k: _normalize(v) for k, v in value.items()}


def judge(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Differences between a recorded outcome and ours, as the corpus README prescribes."""
    problems: list[str] = []
    masked = expected.get("masked", [])
    mine = {"output": actual["output"], "error": actual["error"], "cause": actual["cause"]}
    if expected["status"] != actual["status"]:
        problems.append(f"status {actual['status']} != {expected['status']}")
    if "/error" not in masked and expected["error"] != actual["error"]:
        problems.append(f"error {actual['error']!r} != {expected['error']!r}")
    if "cause_json" in expected:
        try:
            parsed = json.loads(actual["cause"] or "null")
        except json.JSONDecodeError:
            parsed = actual["cause"]
        want = json.loads(json.dumps(expected["cause_json"]))
        doc = {"cause_json": parsed}
        ref = {"cause_json": want}
        for pointer in masked:
            if pointer.startswith("/cause_json"):
                _drop_pointer(doc, pointer)
                _drop_pointer(ref, pointer)
        if _normalize(doc) != _normalize(ref):
            problems.append(f"cause {actual['cause']!r} != {expected['cause_json']!r}")
    elif "/cause" not in masked and expected["cause"] != actual["cause"]:
        problems.append(f"cause {actual['cause']!r} != {expected['cause']!r}")
    elif "/cause" in masked and expected.get("masked_patterns", {}).get("/cause"):
        pattern = expected["masked_patterns"]["/cause"]
        if not re.fullmatch(pattern, actual["cause"] or "", re.S):
            problems.append(f"cause {actual['cause']!r} does not match {pattern!r}")
    if expected["status"] == "SUCCEEDED":
        doc = {"output": json.loads(json.dumps(mine["output"]))}
        ref = {"output": json.loads(json.dumps(expected["output"]))}
        for pointer in masked:
            if pointer.startswith("/output"):
                _drop_pointer(doc, pointer)
                _drop_pointer(ref, pointer)
        if _normalize(doc) != _normalize(ref):
            problems.append(
                f"output {json.dumps(mine['output'])[:400]} != "
                f"{json.dumps(expected['output'])[:400]}"
            )
    return problems


def event_signature(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["type"], event.get("name"), event.get("index"), event.get("error"))


def history_shape(events: list[Any]) -> list[dict[str, Any]]:
    """Our history in the corpus's shape: type, and name/index/error where present."""
    shaped: list[dict[str, Any]] = []
    for event in events:
        item: dict[str, Any] = {"type": event.type}
        details = event.details
        if event.type.endswith(("StateEntered", "StateExited")) and "name" in details:
            item["name"] = details["name"]
        if event.type.startswith("MapIteration"):
            item["name"] = details.get("name")
            item["index"] = details.get("index")
        # The recorder kept the error of failure events, not of EvaluationFailed.
        if "error" in details and event.type != "EvaluationFailed":
            item["error"] = details["error"]
        shaped.append(item)
    return shaped


def _parallel_sections(events: list[dict[str, Any]]) -> Iterator[tuple[int, int]]:
    """Spans from a Parallel's start to its end, outermost only.

    A retried Parallel starts again without ending first, so a span left open
    closes at the last Parallel end event seen.
    """
    depth = 0
    start = 0
    last_end = -1
    for i, event in enumerate(events):
        if event["type"] == "ParallelStateStarted":
            if depth == 0:
                start = i
            depth += 1
        elif event["type"] in ("ParallelStateExited", "ParallelStateFailed") and depth:
            depth -= 1
            last_end = i
            if depth == 0:
                yield start, i
    if depth and last_end > start:
        yield start, last_end


def compare_history(recorded: dict[str, Any], ours: list[dict[str, Any]]) -> list[str]:
    want = recorded["events"]
    if not recorded.get("order_normalized_in_parallel_branches"):
        a = [event_signature(e) for e in ours]
        b = [event_signature(e) for e in want]
        if a == b:
            return []
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return [f"event {i + 1}: {x} != {y}"]
        return [f"{len(a)} events != {len(b)}"]

    # Concurrent branches were sorted by the recorder: compare the multisets of
    # each Parallel section and the exact order outside them.
    def folded(events: list[dict[str, Any]]) -> list[Any]:
        sections = list(_parallel_sections(events))
        out: list[Any] = []
        i = 0
        for start, end in sections:
            out.extend(event_signature(e) for e in events[i:start])
            out.append(
                tuple(
                    sorted(
                        Counter(event_signature(e) for e in events[start : end + 1]).items(),
                        key=repr,
                    )
                )
            )
            i = end + 1
        out.extend(event_signature(e) for e in events[i:])
        return out

    if folded(ours) == folded(want):
        return []
    return ["histories differ (parallel sections compared as multisets)"]
