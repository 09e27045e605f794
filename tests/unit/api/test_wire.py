"""Frames and failures between the HTTP front and the engine's process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from dirigent.api.protocol import ApiError
from dirigent.api.wire import (
    MAX_FRAME,
    EngineFailure,
    FrameError,
    Frames,
    error_of,
    failure_of,
    frame,
)
from dirigent.engine.errors import ExecutionDoesNotExist, ServiceError, StateMachineDoesNotExist


def test_messages_split_anywhere_across_chunks_come_out_whole_and_in_order() -> None:
    sent = [
        (1, "DescribeExecution", {"executionArn": "arn:x"}),
        (
            2,
            True,
            {"startDate": datetime(2026, 11, 29, 16, 0, tzinfo=UTC), "name": "é\x00\U0001f600"},
        ),
        (3, False, ("service", "InvalidArn", "bad", 400)),
    ]
    data = b"".join(frame(message) for message in sent)
    for size in (1, 3, 7, len(data)):
        frames = Frames()
        received = []
        for start in range(0, len(data), size):
            received += frames.feed(data[start : start + size])
        assert received == sent


def test_a_length_over_the_bound_breaks_the_link_instead_of_waiting_for_it() -> None:
    with pytest.raises(FrameError, match="over the"):
        Frames().feed((MAX_FRAME + 1).to_bytes(4, "big") + b"x")


def test_bytes_that_do_not_decode_break_the_link() -> None:
    with pytest.raises(FrameError, match="does not decode"):
        Frames().feed((3).to_bytes(4, "big") + b"abc")


def test_a_service_error_comes_back_as_the_engines_own_class() -> None:
    error = error_of(failure_of(ExecutionDoesNotExist("Execution Does Not Exist: 'arn:x'")))
    assert type(error) is ExecutionDoesNotExist
    assert (error.code, error.status, error.message) == (
        "ExecutionDoesNotExist",
        400,
        "Execution Does Not Exist: 'arn:x'",
    )


def test_a_service_error_code_without_a_class_here_keeps_its_code_and_status() -> None:
    error = error_of(("service", "SomethingNew", "what it said", 409))
    assert isinstance(error, ServiceError)
    assert not isinstance(error, StateMachineDoesNotExist)
    assert (error.code, error.status, error.message) == ("SomethingNew", 409, "what it said")


def test_api_errors_keep_code_message_and_status() -> None:
    error = error_of(failure_of(ApiError("NotFound", "this server keeps no event feed", 404)))
    assert isinstance(error, ApiError)
    assert (error.code, error.message, error.status) == (
        "NotFound",
        "this server keeps no event feed",
        404,
    )


def test_a_bug_in_the_engine_is_an_engine_failure_not_the_callers_error() -> None:
    error = error_of(failure_of(KeyError("stateMachineArn")))
    assert isinstance(error, EngineFailure)
    assert not isinstance(error, ServiceError | ApiError)
    assert "KeyError" in str(error)


def test_a_call_dropped_at_shutdown_is_cancelled_on_the_other_side() -> None:
    assert isinstance(error_of(failure_of(asyncio.CancelledError())), asyncio.CancelledError)
