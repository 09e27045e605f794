"""Mocked task responses in the format of AWS Step Functions Local's MockConfigFile.

    {"StateMachines": {"<machine>": {"TestCases": {"<case>": {"<state>": "<response>"}}}},
     "MockedResponses": {"<response>": {"0": {"Return": ...}, "1-2": {"Throw": {...}}}}}

The keys of a mocked response are invocation indices (``"0"``) or inclusive
ranges (``"1-2"``); an index counts a state's invocations across the whole
execution, retries included. A configuration is checked completely when it is
loaded, so a typo is reported before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dirigent.asl.model import Json
from dirigent.errors import InputError


@dataclass(frozen=True, slots=True)
class MockReturn:
    value: Json


@dataclass(frozen=True, slots=True)
class MockThrow:
    error: str | None
    cause: str | None


MockResponse = MockReturn | MockThrow


@dataclass(frozen=True, slots=True)
class _Span:
    first: int
    last: int
    response: MockResponse


@dataclass(frozen=True, slots=True)
class TestCase:
    """The mocked responses of one test case, by state name."""

    __test__ = False  # not a pytest class, whatever its name says

    name: str
    spans: Mapping[str, tuple[_Span, ...]]

    def mocks(self, state_name: str) -> bool:
        return state_name in self.spans

    def response(self, state_name: str, invocation: int) -> MockResponse | None:
        for span in self.spans.get(state_name, ()):
            if span.first <= invocation <= span.last:
                return span.response
        return None


def _span_bounds(key: str, where: str) -> tuple[int, int]:
    first, sep, last = key.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise InputError(
            f'{where}: key {key!r} is not an invocation index like "0" or "1-2"'
        ) from None
    if low < 0 or high < low:
        raise InputError(f"{where}: range {key!r} is empty or negative")
    return low, high


def _response(value: Any, where: str) -> MockResponse:
    if not isinstance(value, dict) or len(value) != 1 or not value.keys() <= {"Return", "Throw"}:
        raise InputError(f"{where}: expected an object with exactly one of Return or Throw")
    if "Return" in value:
        return MockReturn(value["Return"])
    throw = value["Throw"]
    if not isinstance(throw, dict):
        raise InputError(f"{where}.Throw: expected an object with Error and Cause")
    unknown = set(throw) - {"Error", "Cause"}
    if unknown:
        raise InputError(f"{where}.Throw: unknown field {sorted(unknown)[0]!r}")
    for key in ("Error", "Cause"):
        if key in throw and not isinstance(throw[key], str):
            raise InputError(f"{where}.Throw.{key}: expected a string")
    return MockThrow(throw.get("Error"), throw.get("Cause"))


def load_test_case(config: Mapping[str, Any], machine: str, case: str) -> TestCase:
    """The named test case of ``machine``, with every response it uses checked."""
    if not isinstance(config, Mapping):
        raise InputError("mock configuration: expected a JSON object")
    machines = config.get("StateMachines")
    responses = config.get("MockedResponses", {})
    if not isinstance(machines, Mapping):
        raise InputError("mock configuration: StateMachines: expected an object")
    if not isinstance(responses, Mapping):
        raise InputError("mock configuration: MockedResponses: expected an object")
    if machine not in machines:
        known = ", ".join(sorted(machines)) or "none"
        raise InputError(
            f"mock configuration: no state machine {machine!r} under StateMachines "
            f"(known: {known}); pass --name to choose one"
        )
    cases = machines[machine].get("TestCases") if isinstance(machines[machine], Mapping) else None
    if not isinstance(cases, Mapping):
        raise InputError(
            f"mock configuration: StateMachines.{machine}.TestCases: expected an object"
        )
    if case not in cases:
        known = ", ".join(sorted(cases)) or "none"
        raise InputError(
            f"mock configuration: no test case {case!r} for {machine!r} (known: {known})"
        )
    mapping = cases[case]
    if not isinstance(mapping, Mapping):
        raise InputError(f"mock configuration: TestCases.{case}: expected an object")
    spans: dict[str, tuple[_Span, ...]] = {}
    for state_name, response_name in mapping.items():
        where = f"MockedResponses.{response_name}"
        if not isinstance(response_name, str) or response_name not in responses:
            raise InputError(
                f"mock configuration: TestCases.{case}.{state_name} names the response "
                f"{response_name!r}, which MockedResponses does not define"
            )
        entries = responses[response_name]
        if not isinstance(entries, Mapping) or not entries:
            raise InputError(f"mock configuration: {where}: expected a non-empty object")
        built = []
        for key, value in entries.items():
            low, high = _span_bounds(str(key), f"mock configuration: {where}")
            built.append(_Span(low, high, _response(value, f"mock configuration: {where}.{key}")))
        spans[state_name] = tuple(sorted(built, key=lambda s: s.first))
    return TestCase(case, spans)
