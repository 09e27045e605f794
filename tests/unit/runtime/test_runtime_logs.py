"""Replica logs: stamped lines, merged across replicas and rotations, filtered, followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dirigent.runtime.logs import Follower, parse_since, read_service, replica_logs
from dirigent.runtime.process import LOG_STAMP_WIDTH, RotatingLog, log_stamp

T0 = 1_800_000_000.0


def stamped_log(path: Path, times: list[float], *, max_bytes: int = 10**6) -> RotatingLog:
    clock = iter(times)
    return RotatingLog(path, max_bytes=max_bytes, clock=lambda: next(clock))


def test_each_line_gets_the_stamp_of_the_moment_it_started(tmp_path: Path) -> None:
    log = stamped_log(tmp_path / "web-0.log", [T0, T0 + 1, T0 + 2])
    log.write(b"one\ntw")
    log.write(b"o\nthree\n")
    log.close()
    lines = (tmp_path / "web-0.log").read_bytes().splitlines()
    assert lines == [log_stamp(T0) + b"one", log_stamp(T0) + b"two", log_stamp(T0 + 1) + b"three"]
    assert len(log_stamp(T0)) == LOG_STAMP_WIDTH


def test_replicas_are_merged_in_time_order_and_rotated_files_included(tmp_path: Path) -> None:
    web0 = stamped_log(tmp_path / "web-0.log", [T0, T0 + 2, T0 + 4], max_bytes=40)
    web1 = stamped_log(tmp_path / "web-1.log", [T0 + 1, T0 + 3])
    other = stamped_log(tmp_path / "web-api-0.log", [T0])
    web0.write(b"a\n")
    web1.write(b"b\n")
    web0.write(b"c\n")  # rotates web-0.log to web-0.log.1
    web1.write(b"d\n")
    web0.write(b"e\n")
    other.write(b"not web\n")
    for log in (web0, web1, other):
        log.close()
    assert list(replica_logs(tmp_path, "web")) == ["web-0", "web-1"]
    lines = read_service(tmp_path, "web")
    assert [(line.replica, line.text) for line in lines] == [
        ("web-0", "a"),
        ("web-1", "b"),
        ("web-0", "c"),
        ("web-1", "d"),
        ("web-0", "e"),
    ]
    assert [line.text for line in read_service(tmp_path, "web", since=T0 + 3)] == ["d", "e"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", T0 - 30), ("5m", T0 - 300), ("2h", T0 - 7200), ("1d", T0 - 86400)],
)
def test_since_accepts_durations_ago(text: str, expected: float) -> None:
    assert parse_since(text, T0) == expected


def test_since_accepts_iso_times_as_utc_unless_they_say_otherwise() -> None:
    assert parse_since("2027-01-15T08:00:00", T0) == parse_since("2027-01-15T08:00:00Z", T0)
    assert parse_since("2027-01-15T09:00:00+01:00", T0) == parse_since("2027-01-15T08:00:00", T0)
    with pytest.raises(ValueError, match="yesterday"):
        parse_since("yesterday", T0)


def test_following_prints_history_once_then_new_lines_across_a_rotation(tmp_path: Path) -> None:
    log = stamped_log(tmp_path / "web-0.log", [T0 + i for i in range(10)], max_bytes=60)
    log.write(b"before\n")
    follower = Follower(tmp_path, "web")
    writes = iter([b"after\n", b"rotated\n", b"partial", b" line\n"])

    def sleep(_seconds: float) -> None:
        log.write(next(writes))

    try:
        assert [line.text for line in follower.history(None)] == ["before"]
        lines = follower.lines(sleep=sleep)
        assert [next(lines).text for _ in range(3)] == ["after", "rotated", "partial line"]
    finally:
        follower.close()
        log.close()
    assert (tmp_path / "web-0.log.1").exists()
