"""JSON text as AWS writes it: compact, key order kept, non-ASCII as is."""

from __future__ import annotations

import json

from dirigent.asl.model import Json

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Json) -> str:
    """Compact JSON text, as AWS prints values inside causes and history events."""
    return _ENCODER.encode(value)


def size_in_bytes(value: Json) -> int:
    """The UTF-8 size of ``value``'s compact JSON text (AWS's 256 KiB limits count this)."""
    return text_size_in_bytes(dumps(value))


def text_size_in_bytes(text: str) -> int:
    """The UTF-8 size of a text, without encoding it when it is all ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def json_type_name(value: Json) -> str:
    """The JSON type of a value, in AWS's words ("Expected 'array', but was 'number'")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
