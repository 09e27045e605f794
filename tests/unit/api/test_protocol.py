"""The JSON 1.0 protocol's decoding and encoding, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dirigent.api.actions import bind_actions
from dirigent.api.auth import ACTION_ROLES
from dirigent.api.protocol import SHAPES, ApiError, action_of, decode_request, encode_response
from dirigent.engine import Engine


def test_an_unknown_target_is_an_unknown_operation() -> None:
    with pytest.raises(ApiError) as caught:
        action_of("AWSStepFunctions.LaunchRocket")
    assert caught.value.code == "UnknownOperationException"


def test_a_target_of_another_service_is_an_unknown_operation() -> None:
    with pytest.raises(ApiError) as caught:
        action_of("DynamoDB_20120810.ListTables")
    assert caught.value.code == "UnknownOperationException"


def test_a_body_that_is_not_json_is_a_serialization_error() -> None:
    with pytest.raises(ApiError) as caught:
        decode_request("ListStateMachines", b"{not json")
    assert caught.value.code == "SerializationException"


def test_a_body_that_is_an_array_is_a_serialization_error() -> None:
    with pytest.raises(ApiError) as caught:
        decode_request("ListStateMachines", b"[1, 2]")
    assert caught.value.code == "SerializationException"


def test_a_member_of_the_wrong_type_is_a_serialization_error() -> None:
    with pytest.raises(ApiError) as caught:
        decode_request("StartExecution", b'{"stateMachineArn": "arn", "input": {"a": 1}}')
    assert caught.value.code == "SerializationException"
    assert "'input' must be a string" in caught.value.message


def test_a_boolean_is_not_an_integer() -> None:
    with pytest.raises(ApiError) as caught:
        decode_request("ListExecutions", b'{"maxResults": true}')
    assert caught.value.code == "SerializationException"


def test_a_missing_required_member_is_a_validation_error_in_aws_words() -> None:
    with pytest.raises(ApiError) as caught:
        decode_request("DescribeExecution", b"{}")
    assert caught.value.code == "ValidationException"
    assert caught.value.message == (
        "1 validation error detected: Value null at 'executionArn' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_unmodelled_members_and_nulls_are_ignored() -> None:
    decoded = decode_request("ListStateMachines", b'{"extra": [1], "nextToken": null}')
    assert decoded == {"extra": [1]}


def test_dates_are_encoded_as_epoch_seconds() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    encoded = json.loads(encode_response({"creationDate": moment, "items": [{"d": moment}]}))
    assert encoded == {"creationDate": 1767225600.0, "items": [{"d": 1767225600.0}]}


def test_every_action_has_a_shape_a_role_decision_and_an_implementation() -> None:
    # An action missing from ACTION_ROLES needs admin, by design; the others must
    # agree exactly, so a new action cannot be served untyped or unimplemented.
    class Store:
        url = "memory:"

    actions = bind_actions(Engine(Store()))  # type: ignore[arg-type]
    assert set(actions) == set(SHAPES)
    assert set(ACTION_ROLES) <= set(SHAPES)
