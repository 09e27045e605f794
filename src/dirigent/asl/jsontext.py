"""JSON text as AWS writes it: compact, key order kept, non-ASCII as is."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

from dirigent.asl.model import Json

#: CPython's C encoder factory (what JSONEncoder uses); None where there is none
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)


def compact_encoder(
    *, ensure_ascii: bool, allow_nan: bool, check_circular: bool = False
) -> Callable[[Any], str]:
    """A compact JSON encoder that writes what ``json.JSONEncoder`` writes, cheaper.

    ``JSONEncoder.encode`` builds a new C encoder on every call (about half
    the cost of encoding a small object, and the engine encodes several per
    transition); this one is built once. Without the C accelerator it is
    ``JSONEncoder.encode`` itself. It does not look for circular references,
    which a value parsed from JSON text cannot hold; ``check_circular`` is for
    values from elsewhere (what a user's function returns), and is
    ``JSONEncoder.encode``, which refuses them with ``ValueError``.
    """
    fallback = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan
    )
    if check_circular or _C_MAKE_ENCODER is None:
        return fallback.encode
    chunks = _C_MAKE_ENCODER(
        None,
        fallback.default,
        encode_basestring_ascii if ensure_ascii else encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


_ENCODE = compact_encoder(ensure_ascii=False, allow_nan=False)


def dumps(value: Json) -> str:
    """Compact JSON text, as AWS prints values inside causes and history events."""
    return _ENCODE(value)


#: :func:`dumps` for a value that did not come from JSON text: a circular
#: reference is a ``ValueError`` rather than unbounded recursion
dumps_foreign = compact_encoder(ensure_ascii=False, allow_nan=False, check_circular=True)


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
