"""Telemetry of the mesh's listeners: request metrics, spans and access logs.

Every listener reports each request it handles once it is answered:

- **metrics**: requests by status, a latency histogram and requests in
  flight, per (reporter, source, destination, route), rendered in the
  Prometheus text format (``dirigent_mesh_requests_total``,
  ``dirigent_mesh_request_duration_seconds``, ``dirigent_mesh_requests_in_flight``);
  ``reporter`` is ``source`` for the caller's outbound listener and
  ``destination`` for the callee's inbound one, as Istio labels them;
- **spans**: one per hop, handed to a sink when one is set (:class:`SpanBuffer`
  keeps the last ones in memory);
- **access logs**: one JSON object per line, handed to a sink when one is set.

Both sinks are opt-in: without them a request's end costs one series update.
With them, the work per request stays small: a span is kept as a raw tuple
and becomes a :class:`Span` when read, an access-log line is one string
formatting operation over fields escaped once per series.

The hot path is a few dictionary look-ups on strings the listener already
holds and integer increments into a preallocated list: no label tuples, no
strings formatted per request. Labels are escaped once, when a series is created.

This module must never make a decision about a request, and never read a
clock: listeners hand it durations and times.
"""

from __future__ import annotations

import contextlib
import json
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: histogram bounds in seconds: fine below a millisecond, where mesh overhead lives
BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_REQUESTS = b'dirigent_mesh_requests_total{%s,status="%d"} %d'
_BUCKET = b'dirigent_mesh_request_duration_seconds_bucket{%s,le="%s"} %d'
_SUM = b"dirigent_mesh_request_duration_seconds_sum{%s} %r"
_COUNT = b"dirigent_mesh_request_duration_seconds_count{%s} %d"
_LE = (*(repr(b).encode() for b in BUCKETS), b"+Inf")
#: spans kept by the default in-memory buffer
SPAN_BUFFER = 10_000


class Series:
    """The figures of one (reporter, source, destination, route)."""

    __slots__ = ("buckets", "in_flight", "labels", "log_fields", "log_request", "statuses", "total")

    def __init__(self, labels: bytes) -> None:
        self.labels = labels
        #: the fixed fields of this series' access-log lines, made on the first one
        self.log_fields: str | None = None
        #: the last (method, path) logged and their escaped fields: a route
        #: mostly sees the same few, and escaping costs more than comparing
        self.log_request: tuple[bytes, bytes, str] = (b"", b"", _REQUEST_FIELDS % ('""', '""'))
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.in_flight = 0

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, status: int, seconds: float) -> None:
        self.in_flight -= 1
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


class Metrics:
    """Every series a process's listeners report into; rendered for ``/metrics``."""

    def __init__(self) -> None:
        # reporter -> source -> destination -> route -> series: nested so a
        # look-up hashes strings the caller holds instead of building a key.
        self._series: dict[str, dict[str, dict[str, dict[str, Series]]]] = {}

    def series(self, reporter: str, source: str, destination: str, route: str) -> Series:
        by_source = self._series.get(reporter)
        if by_source is None:
            by_source = self._series[reporter] = {}
        by_destination = by_source.get(source)
        if by_destination is None:
            by_destination = by_source[source] = {}
        by_route = by_destination.get(destination)
        if by_route is None:
            by_route = by_destination[destination] = {}
        found = by_route.get(route)
        if found is None:
            labels = b",".join(
                b'%s="%s"' % (name, _escape(value))
                for name, value in (
                    (b"reporter", reporter), (b"source", source),
                    (b"destination", destination), (b"route", route),
                )
            )  # fmt: skip
            found = by_route[route] = Series(labels)
        return found

    def served(self, destination: str) -> list[Series]:
        """Every series the callee side reported for ``destination`` (its whole load)."""
        return [
            series
            for by_destination in self._series.get("destination", {}).values()
            for series in by_destination.get(destination, {}).values()
        ]

    def all_series(self) -> list[Series]:
        return [
            series
            for by_source in self._series.values()
            for by_destination in by_source.values()
            for by_route in by_destination.values()
            for series in by_route.values()
        ]

    def render(self) -> bytes:
        """The Prometheus text exposition format, version 0.0.4."""
        every = self.all_series()
        out = [
            b"# HELP dirigent_mesh_requests_total Requests answered, by status.",
            b"# TYPE dirigent_mesh_requests_total counter",
        ]
        for s in every:
            for status, count in sorted(s.statuses.items()):
                out.append(_REQUESTS % (s.labels, status, count))
        out += [
            b"# HELP dirigent_mesh_request_duration_seconds Time to answer a request.",
            b"# TYPE dirigent_mesh_request_duration_seconds histogram",
        ]
        for s in every:
            cumulative = 0
            for le, count in zip(_LE, s.buckets, strict=True):
                cumulative += count
                out.append(_BUCKET % (s.labels, le, cumulative))
            out.append(_SUM % (s.labels, s.total))
            out.append(_COUNT % (s.labels, cumulative))
        out += [
            b"# HELP dirigent_mesh_requests_in_flight Requests being handled now.",
            b"# TYPE dirigent_mesh_requests_in_flight gauge",
        ]
        out += [b"dirigent_mesh_requests_in_flight{%s} %d" % (s.labels, s.in_flight) for s in every]
        return b"\n".join(out) + b"\n"


def _escape(value: str) -> bytes:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Span:
    """One hop of one request, as the listener that handled it saw it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    #: "client" for the caller's outbound hop, "server" for the callee's inbound one
    kind: str
    name: str
    source: str
    destination: str
    route: str
    status: int
    #: seconds since the epoch, and the duration in seconds
    start: float
    duration: float


#: what a listener knows of a span when it ends: (traceparent sent on, parent
#: id, kind, source, destination, route, status, start, duration)
RawSpan = tuple[bytes, bytes | None, str, str, str, str, int, float, float]


def span_of(raw: RawSpan) -> Span:
    """The :class:`Span` a raw record describes (ids sliced from the traceparent)."""
    traceparent, parent, kind, source, destination, route, status, start, duration = raw
    return Span(
        traceparent[3:35].decode(), traceparent[36:52].decode(),
        parent.decode() if parent else None, kind, f"{destination} {route}", source,
        destination, route, status, start, duration,
    )  # fmt: skip


class SpanBuffer:
    """The last spans recorded, oldest first: the span sink tests and debugging read.

    Telemetry hands it raw records (a tuple, no dataclass, no string
    formatting per request); :attr:`spans` turns them into :class:`Span`
    values when somebody reads them.
    """

    def __init__(self, size: int = SPAN_BUFFER) -> None:
        self._kept: deque[Span | RawSpan] = deque(maxlen=size)

    def __call__(self, span: Span) -> None:
        self._kept.append(span)

    def keep(self, raw: RawSpan) -> None:
        self._kept.append(raw)

    @property
    def spans(self) -> list[Span]:
        return [kept if isinstance(kept, Span) else span_of(kept) for kept in self._kept]


# The access log's line, formatted in one operation. It must read exactly as
# json.JSONEncoder(separators=(",", ":")) writes the same object (the unit
# tests compare them): strings through the encoder's own ASCII escaping,
# floats and ints through their repr, as the encoder does.
_LINE = '{"time":%s,%s,%s,"status":%d,"duration_ms":%s,"trace_id":"%s","span_id":"%s"}'
_REQUEST_FIELDS = '"method":%s,"path":%s'
_SIX_PLACES, _THREE_PLACES = "%.6f", "%.3f"
_escape_json: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _fixed_fields(kind: str, source: str, destination: str, route: str) -> str:
    """The part of a series' access-log lines that never changes, made once per series."""
    return ",".join(
        f'"{key}":{_escape_json(value)}'
        for key, value in (
            ("kind", kind), ("source", source), ("destination", destination), ("route", route)
        )
    )  # fmt: skip


def python_access_line(  # noqa: PLR0917 - positional on purpose: called per request
    start: float, fixed: str, request: str, status: int, duration: float, traceparent: bytes
) -> str:
    """One access-log line from a series' escaped fields and the request's figures.

    The reference for the compiled ``_accesslog.line``, which must write the
    same characters for the same arguments.
    """
    # What the encoder writes for round(x, 6) and round(x, 3): the same
    # digits, as "%.6f" gives them, without trailing zeros: half the
    # cost, and exact where repr() writes no exponent and every
    # six-place value is its own float (a clock's seconds, a duration).
    if 1e-4 <= start < 2**32:
        when = (_SIX_PLACES % start).rstrip("0")
        when = when + "0" if when[-1] == "." else when
    else:
        when = repr(round(start, 6))
    millis = duration * 1000
    if millis < 1e9:
        took = (_THREE_PLACES % millis).rstrip("0")
        took = took + "0" if took[-1] == "." else took
    else:
        took = repr(round(millis, 3))
    ids = traceparent.decode()
    return _LINE % (when, fixed, request, status, took, ids[3:35], ids[36:52])


#: what record() calls: the compiled line when there is one
access_line: Callable[[float, str, str, int, float, bytes], str] = python_access_line
with contextlib.suppress(ImportError):  # built without a C compiler: the version above serves
    from dirigent.mesh._accesslog import line as access_line


@dataclass(slots=True)
class Telemetry:
    """Where listeners report: metrics always; spans and access logs only if a sink is set.

    Both sinks are opt-in (None by default): a listener whose telemetry has
    neither pays for counters alone, and nothing is kept that nobody reads.
    """

    metrics: Metrics = field(default_factory=Metrics)
    spans: Callable[[Span], None] | None = None
    #: receives one JSON document per request, without the newline
    access_log: Callable[[str], None] | None = None

    @property
    def sinks(self) -> bool:
        """Whether a request's end is more than a series update."""
        return self.spans is not None or self.access_log is not None

    def record(  # noqa: PLR0917 - positional on purpose: called per request
        self,
        series: Series,
        kind: str,
        source: str,
        destination: str,
        route: str,
        method: bytes,
        path: bytes,
        status: int,
        start: float,
        duration: float,
        traceparent: bytes,
        parent_id: bytes | None,
    ) -> None:
        """Close one request: its series, its span and its access log line.

        Positional, and the span's ids left inside the ``traceparent`` this hop
        sent on: no keyword dictionary, no id decoding unless a sink wants it.
        """
        series.finish(status, duration)
        spans = self.spans
        if spans is not None:
            raw: RawSpan = (
                traceparent, parent_id, kind, source, destination, route, status, start, duration
            )  # fmt: skip
            if type(spans) is SpanBuffer:
                spans.keep(raw)  # the Span is built when the buffer is read
            else:
                spans(span_of(raw))
        access_log = self.access_log
        if access_log is not None:
            fixed = series.log_fields
            if fixed is None:
                fixed = series.log_fields = _fixed_fields(kind, source, destination, route)
            last_method, last_path, request = series.log_request
            if method != last_method or path != last_path:
                request = _REQUEST_FIELDS % (
                    _escape_json(method.decode("latin-1")),
                    _escape_json(path.decode("latin-1")),
                )
                series.log_request = (method, path, request)
            access_log(access_line(start, fixed, request, status, duration, traceparent))
