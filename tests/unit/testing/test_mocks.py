"""MockConfigFile loading: what it accepts, and every mistake it reports before a run."""

from __future__ import annotations

from typing import Any

import pytest

from dirigent.errors import InputError
from dirigent.testing.mocks import MockReturn, MockThrow, load_test_case


def config(responses: dict[str, Any], case: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "StateMachines": {"Order": {"TestCases": {"Happy": case or {"Charge": "ChargeOk"}}}},
        "MockedResponses": responses,
    }


def test_a_test_case_maps_states_to_responses_by_invocation_index() -> None:
    case = load_test_case(
        config(
            {
                "ChargeOk": {
                    "0": {"Throw": {"Error": "Lambda.TooManyRequestsException", "Cause": "busy"}},
                    "1-2": {"Return": {"charged": True}},
                }
            }
        ),
        "Order",
        "Happy",
    )
    assert case.mocks("Charge")
    assert not case.mocks("Ship")
    assert case.response("Charge", 0) == MockThrow("Lambda.TooManyRequestsException", "busy")
    assert case.response("Charge", 1) == MockReturn({"charged": True})
    assert case.response("Charge", 2) == MockReturn({"charged": True})
    assert case.response("Charge", 3) is None


def test_a_throw_may_leave_out_error_and_cause() -> None:
    case = load_test_case(config({"ChargeOk": {"0": {"Throw": {}}}}), "Order", "Happy")
    assert case.response("Charge", 0) == MockThrow(None, None)


def test_a_return_may_be_any_json_value_including_null() -> None:
    case = load_test_case(config({"ChargeOk": {"0": {"Return": None}}}), "Order", "Happy")
    assert case.response("Charge", 0) == MockReturn(None)


def mistake(cfg: Any, machine: str = "Order", case: str = "Happy") -> str:
    with pytest.raises(InputError) as raised:
        load_test_case(cfg, machine, case)
    return str(raised.value)


def test_an_unknown_test_case_is_named_with_the_known_ones() -> None:
    message = mistake(config({"ChargeOk": {"0": {"Return": 1}}}), case="Sad")
    assert "'Sad'" in message
    assert "Happy" in message


def test_an_unknown_state_machine_is_named_with_the_known_ones() -> None:
    message = mistake(config({"ChargeOk": {"0": {"Return": 1}}}), machine="Refund")
    assert "'Refund'" in message
    assert "Order" in message
    assert "--name" in message


def test_a_test_case_naming_an_undefined_response_is_rejected() -> None:
    message = mistake(config({"Other": {"0": {"Return": 1}}}))
    assert "'ChargeOk'" in message
    assert "MockedResponses" in message


@pytest.mark.parametrize("key", ["2-1", "x", "-1", "1-", "1-2-3", ""])
def test_a_bad_invocation_key_is_rejected(key: str) -> None:
    message = mistake(config({"ChargeOk": {key: {"Return": 1}}}))
    assert "MockedResponses.ChargeOk" in message
    assert repr(key) in message


def test_a_response_with_both_return_and_throw_is_rejected() -> None:
    message = mistake(config({"ChargeOk": {"0": {"Return": 1, "Throw": {"Error": "E"}}}}))
    assert "MockedResponses.ChargeOk.0" in message
    assert "exactly one of Return or Throw" in message


def test_a_response_with_neither_return_nor_throw_is_rejected() -> None:
    assert "exactly one" in mistake(config({"ChargeOk": {"0": {"Result": 1}}}))


def test_a_throw_with_a_non_string_error_is_rejected() -> None:
    message = mistake(config({"ChargeOk": {"0": {"Throw": {"Error": 42}}}}))
    assert "Throw.Error" in message
    assert "string" in message


def test_a_throw_with_a_non_string_cause_is_rejected() -> None:
    assert "Throw.Cause" in mistake(config({"ChargeOk": {"0": {"Throw": {"Cause": {"a": 1}}}}}))


def test_a_throw_with_an_unknown_field_is_rejected() -> None:
    assert "'Message'" in mistake(config({"ChargeOk": {"0": {"Throw": {"Message": "m"}}}}))


def test_an_empty_response_is_rejected() -> None:
    assert "non-empty" in mistake(config({"ChargeOk": {}}))


@pytest.mark.parametrize(
    "cfg",
    [
        [],
        {},
        {"StateMachines": []},
        {"StateMachines": {"Order": {}}},
        {"StateMachines": {"Order": {"TestCases": {"Happy": []}}}},
        {"StateMachines": {"Order": {"TestCases": {"Happy": {}}}}, "MockedResponses": []},
    ],
)
def test_a_malformed_configuration_is_an_input_error(cfg: Any) -> None:
    assert mistake(cfg).startswith("mock configuration")
