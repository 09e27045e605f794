"""ISO-8601 timestamps exactly as Step Functions accepts them.

AWS parses ``Wait.Timestamp``/``TimestampPath`` and the ``Timestamp*`` Choice
operands with Java's ``ISO_OFFSET_DATE_TIME`` (its error text says "ISO-8601
extended offset date-time format"), in strict resolution. So this module
accepts exactly that shape and nothing more lenient:

    YYYY-MM-DD 'T' hh:mm[:ss[.f{0,9}]] ( 'Z' | ±hh:mm[:ss] )

``T`` and ``Z`` are matched case-insensitively (Java's formatter parses case
insensitively); the date must exist (no 2016-02-30), hours are 00-23, minutes
and seconds 00-59 (no leap second), an offset is at most ±18:00. A space instead
of ``T``, a missing offset, a day-first date, or a basic (colon-less) form are
rejected — the corpus records AWS failing a Wait on each of those.

Python's ``datetime`` keeps microseconds while AWS keeps nanoseconds, so
:func:`instant` returns the nanoseconds alongside the datetime for comparisons
that must not lose precision.

This module never reads a clock: "now" is always the caller's business.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from dirigent.asl.model import Json

__all__ = ["InvalidTimestamp", "instant", "is_timestamp", "parse_timestamp"]

_TIMESTAMP = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"[Tt]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{0,9}))?)?"
    r"(?:(?P<zulu>[Zz])|(?P<sign>[+-])(?P<off_h>\d{2}):(?P<off_m>\d{2})(?::(?P<off_s>\d{2}))?)",
    re.ASCII,
)

#: Java's ZoneOffset bound: ±18:00.
_MAX_OFFSET = timedelta(hours=18)


class InvalidTimestamp(ValueError):
    """A string that is not an ISO-8601 extended offset date-time as AWS parses it."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is not an ISO-8601 extended offset date-time: {reason}")
        self.text = text
        self.reason = reason


def instant(text: str) -> tuple[datetime, int]:
    """The aware datetime of ``text`` and its nanoseconds within the second.

    The datetime's microseconds are the nanoseconds truncated, and aware
    datetimes compare as instants whatever their offsets, so these pairs order
    exactly as AWS orders the timestamps (compare pairs, not datetimes, when two
    values may differ below a microsecond).
    """
    return _parse(text)


def parse_timestamp(text: str) -> datetime:
    """A timezone-aware datetime for ``text`` (in its own offset), or :class:`InvalidTimestamp`.

    Sub-microsecond digits are truncated (``datetime`` cannot hold them).
    """
    return _parse(text)[0]


def is_timestamp(value: Json) -> bool:
    """Whether ``value`` is a string AWS accepts as a timestamp (Choice ``IsTimestamp``)."""
    if not isinstance(value, str):
        return False
    try:
        _parse(value)
    except InvalidTimestamp:
        return False
    return True


def _parse(text: str) -> tuple[datetime, int]:
    if not isinstance(text, str):
        raise InvalidTimestamp(repr(text), "not a string")
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise InvalidTimestamp(text, "expected YYYY-MM-DDThh:mm[:ss[.fffffffff]] and Z or ±hh:mm")
    part = match.group
    fraction = part("fraction") or ""
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    try:
        if part("zulu"):
            zone = UTC
        else:
            offset = timedelta(
                hours=int(part("off_h")),
                minutes=int(part("off_m")),
                seconds=int(part("off_s") or 0),
            )
            if int(part("off_m")) > 59 or int(part("off_s") or 0) > 59 or offset > _MAX_OFFSET:
                raise InvalidTimestamp(text, "offset out of range")
            zone = timezone(-offset if part("sign") == "-" else offset)
        # datetime() validates month, day-of-month (leap years included),
        # hour, minute and second ranges, which is Java's strict resolution.
        moment = datetime(
            int(part("year")),
            int(part("month")),
            int(part("day")),
            int(part("hour")),
            int(part("minute")),
            int(part("second") or 0),
            nanos // 1000,
            tzinfo=zone,
        )
    except ValueError as exc:
        if isinstance(exc, InvalidTimestamp):
            raise
        raise InvalidTimestamp(text, str(exc)) from exc
    return moment, nanos
