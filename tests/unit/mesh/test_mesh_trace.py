"""W3C trace context at one hop: continue a valid trace, start one otherwise."""

from __future__ import annotations

import random

from dirigent.mesh.policy import trace

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read_into_its_parts() -> None:
    assert trace.parse(VALID) == (
        b"4bf92f3577b34da6a3ce929d0e0e4736", b"00f067aa0ba902b7", b"01",
    )  # fmt: skip


def test_malformed_or_all_zero_traceparents_are_ignored() -> None:
    for bad in (
        None,
        b"",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        VALID + b"-extra",  # version 00 has nothing after the flags
    ):
        assert trace.parse(bad) is None, bad


def test_a_later_version_with_more_fields_is_read_as_version_00() -> None:
    assert trace.parse(b"01" + VALID[2:] + b"-what-comes-next") is not None


def test_a_hop_keeps_the_trace_and_flags_and_names_its_caller_as_parent() -> None:
    span = trace.hop(VALID, random.Random(1).getrandbits)
    assert span.trace_id == b"4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent_id == b"00f067aa0ba902b7"
    assert span.flags == b"01"
    assert span.span_id != span.parent_id
    assert span.traceparent == b"00-" + span.trace_id + b"-" + span.span_id + b"-01"


def test_without_a_valid_parent_a_hop_starts_a_sampled_trace() -> None:
    span = trace.hop(b"garbage", random.Random(1).getrandbits)
    assert span.parent_id is None
    assert span.flags == b"01"
    assert trace.parse(span.traceparent) is not None


def test_a_zero_draw_never_makes_an_invalid_id() -> None:
    span = trace.hop(None, lambda bits: 0)
    assert trace.parse(span.traceparent) is not None
