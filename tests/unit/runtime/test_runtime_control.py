"""The control protocol: every message survives a round trip; malformed ones say whose fault."""

from __future__ import annotations

import pytest

from dirigent.runtime.control import (
    Apply,
    Done,
    Down,
    ListReplicas,
    ProtocolError,
    Refused,
    Request,
    Restart,
    Scale,
    Status,
    decode_reply,
    decode_request,
    encode,
)


@pytest.mark.parametrize(
    "request_",
    [Status(), ListReplicas(), Scale("web", 3), Scale("web", 0), Restart("web"), Apply(), Down()],
)
def test_every_request_round_trips_as_one_json_line(request_: Request) -> None:
    line = encode(request_)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode_request(line) == request_


def test_replies_round_trip_with_their_body_or_error() -> None:
    done = decode_reply(encode(Done({"replicas": [{"pid": 1}]})))
    assert isinstance(done, Done)
    assert dict(done.body) == {"replicas": [{"pid": 1}]}
    assert decode_reply(encode(Refused("no service 'x'"))) == Refused("no service 'x'")


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        (b"not json\n", "not a JSON line"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'{"op": "explode"}\n', "unknown op"),
        (b'{"op": "scale", "service": "web", "replicas": -1}\n', "integer >= 0"),
        (b'{"op": "scale", "service": "web", "replicas": true}\n', "integer >= 0"),
        (b'{"op": "restart"}\n', "'service' must be a non-empty string"),
    ],
)
def test_a_malformed_request_is_the_clients_fault(line: bytes, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint) as caught:
        decode_request(line)
    assert caught.value.remote


def test_a_reply_without_ok_is_refused_as_the_servers_fault() -> None:
    with pytest.raises(ProtocolError, match="boolean 'ok'"):
        decode_reply(b'{"body": {}}\n')


def test_an_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="too long"):
        decode_request(b'{"op": "ps", "pad": "' + b"x" * (1 << 20) + b'"}\n')


def test_a_fault_request_round_trips_through_the_protocol() -> None:
    from dirigent.runtime.control import InjectFault, decode_request, encode

    fault = InjectFault("payments", delay=3.0, delay_percent=50.0, abort=503, abort_percent=5.0)
    assert decode_request(encode(fault)) == fault
    assert decode_request(encode(InjectFault("payments"))) == InjectFault("payments")


@pytest.mark.parametrize(
    "line",
    [
        b'{"op": "fault"}',
        b'{"op": "fault", "service": "p", "delay": -1}',
        b'{"op": "fault", "service": "p", "delay_percent": 150}',
        b'{"op": "fault", "service": "p", "abort": 42, "abort_percent": 10}',
        b'{"op": "fault", "service": "p", "delay": true}',
    ],
)
def test_a_malformed_fault_request_is_the_clients_fault(line: bytes) -> None:
    from dirigent.runtime.control import ProtocolError, decode_request

    with pytest.raises(ProtocolError) as raised:
        decode_request(line)
    assert raised.value.remote
