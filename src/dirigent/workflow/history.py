"""History events, named, numbered and shaped as AWS Step Functions records them.

An event is what ``GetExecutionHistory`` returns: ``id`` counts from 1 without
gaps, ``previous_event_id`` names the event that led to this one on the same
path of control (so concurrent Parallel branches and Map iterations each form
their own chain), and ``details`` holds the ``<type>EventDetails`` object with
AWS's field names. The core appends events; nothing ever edits one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dirigent.asl.jsontext import dumps
from dirigent.asl.model import Json


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    id: int
    previous_event_id: int
    timestamp: datetime
    type: str
    details: Mapping[str, Any]

    @property
    def details_key(self) -> str:
        """AWS's name for this event's details field, e.g. ``taskScheduledEventDetails``."""
        return detail_key(self.type)

    def to_aws(self) -> dict[str, Any]:
        """The event as the ``GetExecutionHistory`` API shapes it (timestamp left as datetime)."""
        shaped: dict[str, Any] = {
            "timestamp": self.timestamp,
            "type": self.type,
            "id": self.id,
            "previousEventId": self.previous_event_id,
        }
        if self.details:
            shaped[self.details_key] = dict(self.details)
        return shaped


# AWS names the details of a few event families after the family, not the event.
_STATE_FAMILY_SUFFIXES = ("StateEntered", "StateExited")


def detail_key(event_type: str) -> str:
    for suffix in _STATE_FAMILY_SUFFIXES:
        if event_type.endswith(suffix) and not event_type.startswith("Execution"):
            return "state" + suffix.removeprefix("State") + "EventDetails"
    return event_type[0].lower() + event_type[1:] + "EventDetails"


def payload(field: str, value: Json) -> dict[str, Any]:
    """A JSON payload field as AWS writes it: the text plus ``<field>Details``."""
    return payload_text(field, dumps(value))


def payload_text(field: str, text: str) -> dict[str, Any]:
    """:func:`payload` of a value whose JSON text is at hand already."""
    return {field: text, f"{field}Details": {"truncated": False}}
