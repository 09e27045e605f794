"""Timestamps as Step Functions accepts them (Wait and the Timestamp* Choice rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dirigent.asl.timestamps import InvalidTimestamp, instant, is_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-03-14T01:59:00Z", datetime(2016, 3, 14, 1, 59, tzinfo=UTC)),
        ("2016-03-14T01:59Z", datetime(2016, 3, 14, 1, 59, tzinfo=UTC)),
        ("2016-03-14t01:59:00z", datetime(2016, 3, 14, 1, 59, tzinfo=UTC)),
        (
            "2016-03-05T21:29:29.243167252Z",
            datetime(2016, 3, 5, 21, 29, 29, 243167, tzinfo=UTC),
        ),
        (
            "2016-02-29T10:00:00.5+05:30",
            datetime(
                2016, 2, 29, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=5, minutes=30))
            ),
        ),
        (
            "2016-03-14T01:59:00-00:00:30",
            datetime(2016, 3, 14, 1, 59, tzinfo=timezone(-timedelta(seconds=30))),
        ),
    ],
)
def test_extended_offset_date_times_parse_to_aware_datetimes(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2016-12-05 21:29:29Z",  # a space instead of T
        "05-12-2016T21:29:29Z",  # day first
        "2016-13-05T21:29:29Z",  # month 13
        "2016-12-05T25:29:29Z",  # hour 25
        "2015-02-29T00:00:00Z",  # not a leap year
        "2016-03-14T01:59:60Z",  # no leap seconds
        "2016-03-14T01:59:00",  # no offset
        "2016-03-14T01:59:00+0100",  # basic offset
        "2016-03-14T01:59:00+19:00",  # beyond Java's ±18:00
        "2016-03-14T01:59:00.1234567890Z",  # more than nanoseconds
        "20160314T015900Z",  # basic format
        "2016-03-14",  # a date only
        " 2016-03-14T01:59:00Z",
        "",
    ],
)
def test_what_aws_rejects_raises_invalid_timestamp(text: str) -> None:
    with pytest.raises(InvalidTimestamp) as caught:
        parse_timestamp(text)
    assert isinstance(caught.value, ValueError)
    assert caught.value.text == text
    assert not is_timestamp(text)


@pytest.mark.parametrize("value", [None, 0, 1.5, True, ["2016-03-14T01:59:00Z"], {}])
def test_only_strings_can_be_timestamps(value: Any) -> None:
    assert not is_timestamp(value)


def test_instants_compare_across_offsets() -> None:
    assert instant("2012-10-09T19:00:55Z") == instant("2012-10-09T21:00:55+02:00")
    assert instant("2012-10-09T19:00:55Z") < instant("2012-10-09T19:00:56Z")


def test_instants_keep_nanoseconds_that_datetime_drops() -> None:
    earlier, later = "2012-10-09T19:00:55.000000001Z", "2012-10-09T19:00:55.000000002Z"
    assert parse_timestamp(earlier) == parse_timestamp(later)
    assert instant(earlier) < instant(later)
    assert instant("2012-10-09T19:00:55.1Z") == instant("2012-10-09T19:00:55.100000000Z")


# --------------------------------------------------------------------------- corpus

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "asl" / "dev"


def wait_timestamp_cases() -> list[Any]:
    """Every recorded Wait on a timestamp, with the timestamp text it waited for."""
    if not CORPUS.is_dir():
        return []
    cases = []
    for folder in sorted(CORPUS.glob("*wait_timestamp*")):
        definition = json.loads((folder / "definition.json").read_text())
        document = json.loads((folder / "input.json").read_text())
        (wait,) = [s for s in definition["States"].values() if s["Type"] == "Wait"]
        if "TimestampPath" in wait:
            assert wait["TimestampPath"] == "$.TimestampValue"
            text = document["TimestampValue"]
        elif wait["Timestamp"] == "{% $states.input.TimestampValue %}":
            text = document["TimestampValue"]
        else:
            text = wait["Timestamp"]
        expected = json.loads((folder / "expected.json").read_text())
        cases.append(pytest.param(text, expected, id=folder.name))
    return cases


WAIT_CASES = wait_timestamp_cases()


@pytest.mark.skipif(not WAIT_CASES, reason="the ASL corpus is not checked out next to the repo")
@pytest.mark.parametrize(("text", "expected"), WAIT_CASES)
def test_recorded_waits_accept_exactly_the_timestamps_aws_accepted(
    text: str, expected: dict[str, Any]
) -> None:
    assert is_timestamp(text) is (expected["status"] == "SUCCEEDED")
    if expected["status"] == "FAILED":
        assert expected["cause"].endswith(text)
