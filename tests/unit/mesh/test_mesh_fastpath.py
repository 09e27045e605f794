"""The hot path's shortcuts make the same decisions as the pure policy cores they stand for.

Each shortcut (counters updated in place, outlier detection asked only when
it can matter, the traceparent made in one formatting, header rewrites on
bytes, the access-log line formatted by hand and its compiled twin, the
retriable outcomes of a route as a set) is replayed against its pure
reference on random input.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirigent.mesh import telemetry as telemetry_module
from dirigent.mesh.config import HttpRoute
from dirigent.mesh.counters import BreakerCounters, OutlierTracker
from dirigent.mesh.policy import breaker, outlier, retry, trace
from dirigent.mesh.policy.headers import HeaderOps, compile_ops, rewrite, rewrite_bytes
from dirigent.mesh.policy.outcome import Failure, is_5xx
from dirigent.mesh.policy.split import Destination, Split
from dirigent.mesh.proxy import RoutePlan
from dirigent.mesh.telemetry import Metrics, SpanBuffer, Telemetry, python_access_line, span_of

OPERATIONS = (
    "start_request", "finish_request", "open_connection", "close_connection", "queue",
    "dequeue", "start_retry", "finish_retry",
)  # fmt: skip
_PURE_ADMITS = {
    "start_request": breaker.start_request,
    "open_connection": breaker.open_connection,
    "queue": breaker.queue,
    "start_retry": breaker.start_retry,
}
_PURE_RELEASES = {
    "finish_request": breaker.finish_request,
    "close_connection": breaker.close_connection,
    "dequeue": breaker.dequeue,
    "finish_retry": breaker.finish_retry,
}
limits = st.integers(min_value=0, max_value=4)


@given(
    st.builds(breaker.ConnectionPool, limits, limits, limits, limits),
    st.lists(st.sampled_from(OPERATIONS), max_size=60),
)
def test_breaker_counters_admit_and_shed_as_the_pure_breaker_does(
    pool: breaker.ConnectionPool, operations: list[str]
) -> None:
    load, counters = breaker.Load(), BreakerCounters()
    for operation in operations:
        if operation in _PURE_ADMITS:
            pure = _PURE_ADMITS[operation](pool, load)
            admitted = getattr(counters, operation)(pool)
            assert admitted == isinstance(pure, breaker.Load)
            if isinstance(pure, breaker.Load):
                load = pure
        else:
            load = _PURE_RELEASES[operation](load)
            getattr(counters, operation)()
        assert counters.load() == load
        # the retry budget reads the same two figures either way
        budget = retry.RetryBudget()
        assert retry.within_budget(budget, counters.requests, counters.retries) == (
            retry.within_budget(budget, load.requests, load.retries)
        )


OUTCOMES = st.one_of(st.sampled_from([200, 204, 404, 500, 502, 503, 504]), st.sampled_from(Failure))
events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        OUTCOMES,
        st.floats(min_value=0.0, max_value=20.0, allow_nan=False),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(
    st.builds(
        outlier.OutlierDetection,
        consecutive_5xx=st.integers(0, 3),
        consecutive_gateway_errors=st.integers(0, 3),
        interval=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
        base_ejection_time=st.sampled_from([0.5, 1.0, 2.0]),
        max_ejection_time=st.sampled_from([1.0, 5.0]),
        max_ejection_percent=st.sampled_from([10.0, 50.0, 100.0]),
    ),
    events,
)
def test_the_outlier_tracker_ejects_and_readmits_as_the_pure_detector_does(
    policy: outlier.OutlierDetection, steps: list[tuple[str, int | Failure, float]]
) -> None:
    """The proxy's old way (readmit before every pick, observe every outcome) is the reference."""
    state, tracker, now = outlier.OutlierState(), OutlierTracker(), 100.0
    for address, outcome, elapsed in steps:
        now += elapsed
        state, _ = outlier.readmit(policy, state, now)
        tracker.readmit(policy, now)
        assert tracker.state == state
        assert tracker.ejected == state.ejected()
        state, _ = outlier.observe(policy, state, address, outcome, now=now, pool_size=4)
        tracker.observe(policy, address, outcome, success=not is_5xx(outcome), now=now, pool_size=4)
        assert tracker.state == state


TRACEPARENTS = st.one_of(
    st.none(),
    st.binary(max_size=60),
    st.builds(
        lambda version, trace_id, span, flags: b"-".join((version, trace_id, span, flags)),
        st.sampled_from([b"00", b"01", b"ff", b"0g"]),
        st.sampled_from(
            [b"4bf92f3577b34da6a3ce929d0e0e4736", b"0" * 32, b"4BF92F3577B34DA6A3CE929D0E0E4736"]
        ),
        st.sampled_from([b"00f067aa0ba902b7", b"0" * 16, b"00f067aa0ba902"]),
        st.sampled_from([b"01", b"00", b"zz"]),
    ),
)


@given(TRACEPARENTS, st.integers(min_value=0, max_value=2**32))
def test_next_traceparent_continues_or_starts_the_trace_hop_would(
    incoming: bytes | None, seed: int
) -> None:
    pure = trace.hop(incoming, random.Random(seed).getrandbits)
    fast = trace.next_traceparent(incoming, random.Random(seed).getrandbits)
    assert fast == (pure.traceparent, pure.parent_id)
    assert (fast[0][3:35], fast[0][36:52]) == (pure.trace_id, pure.span_id)


names = st.sampled_from(["x-a", "X-A", "x-b", "Host", "x-mesh", "X-Mesh", "accept"])
latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=8)


@given(
    st.builds(
        HeaderOps,
        set=st.dictionaries(names, latin1, max_size=3),
        add=st.dictionaries(names, latin1, max_size=2),
        remove=st.frozensets(names, max_size=2),
    ),
    st.lists(st.tuples(names.map(str.lower), latin1), max_size=6),
)
def test_header_rewrites_on_bytes_give_what_the_text_rewrite_gives(
    ops: HeaderOps, headers: list[tuple[str, str]]
) -> None:
    encoded = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    compiled = compile_ops(ops)
    got = encoded if compiled is None else rewrite_bytes(compiled, encoded)
    expected = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in rewrite(ops, headers)]
    assert got == expected


AccessLine = Callable[[float, str, str, int, float, bytes], str]
ACCESS_LINES = [pytest.param(python_access_line, id="python")]
if telemetry_module.access_line is not python_access_line:
    ACCESS_LINES.append(pytest.param(telemetry_module.access_line, id="compiled"))


@pytest.mark.parametrize("access_line", ACCESS_LINES)
@given(
    st.text(max_size=10),
    st.binary(max_size=12),
    st.binary(max_size=30),
    st.integers(100, 599),
    st.floats(min_value=0, max_value=2e9, allow_nan=False),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    TRACEPARENTS,
)
def test_the_access_log_line_reads_as_the_json_encoder_writes_it(  # noqa: PLR0917 - drawn by hypothesis
    access_line: AccessLine,
    route: str,
    method: bytes,
    path: bytes,
    status: int,
    start: float,
    duration: float,
    incoming: bytes | None,
) -> None:
    lines: list[str] = []
    telemetry = Telemetry(access_log=lines.append)
    series = telemetry.metrics.series("source", "orders", 'pay"ments', route)
    traceparent, parent = trace.next_traceparent(incoming, random.Random(1).getrandbits)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(telemetry_module, "access_line", access_line)
        for _ in range(2):  # the second line reuses the fixed fields made for the first
            telemetry.record(
                series, "client", "orders", 'pay"ments', route, method, path, status, start,
                duration, traceparent, parent,
            )  # fmt: skip
    expected = json.JSONEncoder(separators=(",", ":")).encode(
        {
            "time": round(start, 6), "kind": "client", "source": "orders",
            "destination": 'pay"ments', "route": route, "method": method.decode("latin-1"),
            "path": path.decode("latin-1"), "status": status,
            "duration_ms": round(duration * 1000, 3), "trace_id": traceparent[3:35].decode(),
            "span_id": traceparent[36:52].decode(),
        }
    )  # fmt: skip
    assert lines == [expected, expected]


NUMBERS = st.one_of(
    st.floats(),
    st.floats(min_value=0, max_value=2**33),
    st.sampled_from([0.0, -0.0, 1e-4, 9.99e-5, 2.0**32, 2.0**32 - 1e-6, 999999.9999995, 1e6]),
    st.integers(-(2**70), 2**70),
    st.booleans(),
)


@pytest.mark.parametrize("access_line", ACCESS_LINES)
@given(
    start=NUMBERS,
    fixed=st.text(max_size=8),
    request=st.text(max_size=8),
    status=st.integers(0, 999) | st.booleans(),
    duration=NUMBERS,
    traceparent=TRACEPARENTS.map(lambda t: t or b"") | st.binary(max_size=60),
)
@settings(max_examples=1000, deadline=None)
def test_every_version_of_the_access_line_writes_what_the_reference_writes(  # noqa: PLR0917 - drawn by hypothesis
    access_line: AccessLine,
    start: float,
    fixed: str,
    request: str,
    status: int,
    duration: float,
    traceparent: bytes,
) -> None:
    try:
        expected: str | type[Exception] = python_access_line(
            start, fixed, request, status, duration, traceparent
        )
    except (ValueError, OverflowError) as error:  # bytes that are not UTF-8, inf rounded
        expected = type(error)
    if isinstance(expected, str):
        assert access_line(start, fixed, request, status, duration, traceparent) == expected
    else:
        with pytest.raises(expected):
            access_line(start, fixed, request, status, duration, traceparent)


def test_the_reference_access_line_keeps_its_form_outside_the_plain_range() -> None:
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    line = python_access_line(5e-5, '"k":1', '"m":2', 200, 2e6, traceparent)
    assert line.startswith('{"time":5e-05,"k":1,"m":2,"status":200,"duration_ms":2000000000.0,')
    assert python_access_line(math.nan, "", "", 1, 0.0, b"").startswith('{"time":nan,')


def test_spans_kept_raw_read_back_as_the_span_of_the_hop() -> None:
    buffer = SpanBuffer()
    telemetry = Telemetry(spans=buffer)
    series = Metrics().series("source", "a", "b", "r")
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    telemetry.record(
        series, "client", "a", "b", "r", b"GET", b"/", 200, 1.0, 0.5, traceparent, b"1" * 16
    )
    [span] = buffer.spans
    assert span == span_of((traceparent, b"1" * 16, "client", "a", "b", "r", 200, 1.0, 0.5))
    assert (span.trace_id, span.span_id, span.parent_id, span.name) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "1" * 16, "b r",
    )  # fmt: skip


def test_telemetry_keeps_no_spans_or_log_unless_a_sink_is_set() -> None:
    assert not Telemetry().sinks


retry_policies = st.builds(
    retry.RetryPolicy,
    attempts=st.integers(0, 3),
    retry_on=st.frozensets(st.sampled_from(retry.RetryOn)),
    retriable_statuses=st.frozensets(st.integers(100, 599), max_size=3),
)


@given(retry_policies)
def test_a_route_plan_retries_exactly_the_outcomes_retry_decide_may_retry(
    policy: retry.RetryPolicy,
) -> None:
    route = HttpRoute("r", (), Split.of([Destination("payments")]), retries=policy)
    plan = RoutePlan(route)
    for outcome in [*range(1000), *Failure]:
        may = (
            retry.decide(
                policy, outcome, 0, now=0.0, deadline=None, budget_ok=True, draw=lambda: 0.0
            )
            != retry.GiveUp.NOT_RETRIABLE
            and policy.attempts > 0
        )
        assert (outcome in plan.retriable) == may
