"""Small typed reads the ``mesh`` section shares: percentages, statuses, matches, names.

Each takes a YAML node and its dotted path, records a located problem on the
manifest's :class:`~dirigent.manifest.reader.Reader` when the value does not
fit, and returns None then, so the walk goes on and every mistake is reported.

This module must never raise on a user's mistake, nor read anything but the
node it is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar

from yaml.nodes import MappingNode, Node

from dirigent.manifest.reader import Fields, Reader, line_of
from dirigent.mesh.policy.routing import StringMatch

T = TypeVar("T")

#: a DNS label, as service and subset names are in the rest of the manifest
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME_MESSAGE = "expected a lowercase name of letters, digits and '-' (a DNS label)"
#: an HTTP header name (an RFC 9110 token)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MATCH_KINDS = ("exact", "prefix", "regex")


def optional(fields: Fields, key: str, read: Callable[[Node, str], T | None], default: T) -> T:
    """``read`` the key if it is given, else ``default``; a bad value also gives the default
    (its problem is already recorded, and nothing is loaded anyway)."""
    node = fields.get(key)
    if node is None:
        return default
    value = read(node, fields.at(key))
    return default if value is None else value


def required(
    fields: Fields, reader: Reader, key: str, read: Callable[[Node, str], T | None]
) -> T | None:
    """``read`` a key that must be given; its absence is a problem on the parent's line."""
    node = fields.get(key)
    if node is None:
        reader.error(fields.line, fields.at(key), "required key is missing")
        return None
    return read(node, fields.at(key))


def percent(reader: Reader, node: Node, path: str) -> float | None:
    value = reader.scalar(node)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 100
    ):
        reader.error(line_of(node), path, "expected a percentage between 0 and 100")
        return None
    return float(value)


def status(reader: Reader, node: Node, path: str) -> int | None:
    value = reader.scalar(node)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        reader.error(line_of(node), path, "expected an HTTP status code from 100 to 599")
        return None
    return value


def name(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.scalar(node)
    if not isinstance(value, str) or not NAME.match(value):
        reader.error(line_of(node), path, NAME_MESSAGE)
        return None
    return value


def key_name(reader: Reader, key: str, node: Node, path: str) -> bool:
    """Whether a mapping key is a valid service or subset name; records a problem if not."""
    if NAME.match(key):
        return True
    reader.error(reader.owner_line(node), path, NAME_MESSAGE)
    return False


def header_name(reader: Reader, key: str, node: Node, path: str) -> str | None:
    """A header name, lowercased as the data plane compares them."""
    if not _HEADER_NAME.match(key):
        reader.error(reader.owner_line(node), path, "expected an HTTP header name")
        return None
    return key.lower()


def strings(reader: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    """A list of non-empty strings."""
    items = reader.items(node, path)
    if items is None:
        return None
    values = [reader.string(item, at) for at, item in items]
    if any(value is None for value in values):
        return None
    return tuple(value for value in values if value is not None)


def text(reader: Reader, node: Node, path: str) -> str | None:
    """A header value: strings, numbers and booleans become their text."""
    return reader.env_value(node, path)


def string_match(reader: Reader, node: Node, path: str) -> StringMatch | None:
    """A plain string (an exact match) or one of ``{exact|prefix|regex: value}``."""
    if not isinstance(node, MappingNode):
        value = reader.string(node, path)
        return None if value is None else StringMatch.exact(value)
    fields = reader.fields(node, path, _MATCH_KINDS)
    if fields is None:
        return None
    if len(fields.nodes) != 1:
        reader.error(fields.line, path, "expected exactly one of: exact, prefix, regex")
        return None
    ((kind, value_node),) = fields.nodes.items()
    value = reader.string(value_node, fields.at(kind), nonempty=kind != "prefix")
    if value is None:
        return None
    if kind == "exact":
        return StringMatch.exact(value)
    if kind == "prefix":
        return StringMatch.prefix(value)
    try:
        return StringMatch.regex(value)
    except re.error as exc:
        reader.error(line_of(value_node), fields.at(kind), f"invalid regular expression: {exc}")
        return None
