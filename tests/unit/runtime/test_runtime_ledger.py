"""The replica records: they survive a round trip, a damaged file, and never name a recycled pid."""

from __future__ import annotations

import os
from pathlib import Path

from dirigent.runtime.ledger import (
    ReplicaRecord,
    decode_records,
    encode_records,
    leftovers,
    read_records,
    write_records,
)
from dirigent.runtime.procfs import start_ticks

WEB0 = ReplicaRecord("web", 0, 4242, 1000, 8080, "abc123")


def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "replicas.json"
    write_records(path, [WEB0, ReplicaRecord("db", 1, 4343, 2000, None, "def456")])
    assert read_records(path) == [WEB0, ReplicaRecord("db", 1, 4343, 2000, None, "def456")]
    assert not (tmp_path / "replicas.json.tmp").exists()


def test_a_damaged_file_yields_what_can_be_read_of_it() -> None:
    good = encode_records([WEB0])
    assert decode_records("{not json") == []
    assert decode_records('{"replicas": [{"service": "web"}, 3]}') == []
    assert decode_records(good.replace("]", ', {"pid": "x"}]', 1)) == [WEB0]


def test_a_missing_file_means_nothing_was_running(tmp_path: Path) -> None:
    assert read_records(tmp_path / "absent.json") == []


def test_a_pid_with_another_start_time_is_not_ours(tmp_path: Path) -> None:
    me = os.getpid()
    ticks = start_ticks(me)
    assert ticks is not None
    recycled = ReplicaRecord("web", 0, me, ticks + 1, None, "r")
    ours = ReplicaRecord("web", 0, me, ticks, None, "r")
    marker = str(tmp_path)  # no process carries it
    assert leftovers([recycled], marker) == (set(), set())
    assert leftovers([ours], marker) == ({me}, set())
