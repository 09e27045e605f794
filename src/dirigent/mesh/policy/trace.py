"""W3C Trace Context: read, continue or start a trace at each hop.

A ``traceparent`` header is ``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``
(https://www.w3.org/TR/trace-context/). Each mesh hop keeps the trace id it
was handed, or starts a trace when there is none or it is malformed, gives
itself a new span id, and passes on a ``traceparent`` naming that span as the
parent of whatever comes next. All-zero ids are invalid, as the spec says.

This module must never draw randomness itself: new ids come from the
``bits`` callable the shell hands in (``random.Random.getrandbits``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: returns a random integer of the given number of bits
Bits = Callable[[int], int]

_HEX = frozenset(b"0123456789abcdef")
_LENGTH = 55  # 2 + 1 + 32 + 1 + 16 + 1 + 2


@dataclass(frozen=True, slots=True)
class Hop:
    """This hop's place in a trace: its span, its parent's (None for a root) and the flags."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes | None
    flags: bytes

    @property
    def traceparent(self) -> bytes:
        """The header to send onwards, naming this hop's span as the parent."""
        return b"00-" + self.trace_id + b"-" + self.span_id + b"-" + self.flags


def parse(value: bytes | None) -> tuple[bytes, bytes, bytes] | None:
    """(trace id, parent span id, flags) from a ``traceparent``, or None if absent or invalid."""
    if value is None or len(value) < _LENGTH:
        return None
    value = value.strip().lower()
    # A future version may append fields after the flags; version 00 may not.
    if len(value) != _LENGTH and (value[:2] == b"00" or value[_LENGTH : _LENGTH + 1] != b"-"):
        return None
    version, trace_id, parent, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    if version == b"ff" or not _hex(version + trace_id + parent + flags):
        return None
    if trace_id == b"0" * 32 or parent == b"0" * 16:
        return None
    return trace_id, parent, flags


def hop(incoming: bytes | None, bits: Bits) -> Hop:
    """This hop's span: a child of ``incoming`` if it is valid, else the root of a new trace."""
    span_id = _new_id(bits, 64)
    parsed = parse(incoming)
    if parsed is None:
        # A new trace is sampled: the mesh records every span it makes.
        return Hop(_new_id(bits, 128), span_id, None, b"01")
    trace_id, parent, flags = parsed
    return Hop(trace_id, span_id, parent, flags)


def next_traceparent(incoming: bytes | None, bits: Bits) -> tuple[bytes, bytes | None]:
    """What :func:`hop` says, as ``(hop.traceparent, hop.parent_id)``, without building a Hop.

    The listeners' hot path: the same draws in the same order (span id, then
    a trace id for a new trace) and the same bytes, in one formatting
    operation instead of a dataclass and three helper calls. The trace and
    span ids are slices of the traceparent (``[3:35]`` and ``[36:52]``).
    """
    span = bits(64) or 1
    if incoming is not None:
        parsed = parse(incoming)
        if parsed is not None:
            trace_id, parent, flags = parsed
            return b"00-%s-%016x-%s" % (trace_id, span, flags), parent
    return b"00-%032x-%016x-01" % (bits(128) or 1, span), None


def _new_id(bits: Bits, size: int) -> bytes:
    # Zero is the one invalid value; a draw of it (1 in 2**64) is nudged off it.
    return b"%0*x" % (size // 4, bits(size) or 1)


def _hex(value: bytes) -> bool:
    return all(c in _HEX for c in value)
