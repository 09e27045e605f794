"""Header rewrites on requests and responses: set, add, remove.

As Istio's ``Headers.HeaderOperations``: ``set`` replaces every value of a
header with one, ``add`` appends a value (keeping those already there) and
``remove`` deletes a header. They are applied in that order, so a header can
be both reset and extended in one rule, and ``remove`` has the last word.
Names compare case-insensitively; the order of untouched headers is kept.

This module must never see a body or a socket: headers are a sequence of
``(name, value)`` pairs in and a new list out.

:func:`rewrite` works on text and is the reference. The listeners call
:func:`rewrite_bytes` with the operations compiled once per policy
(:func:`compile_ops`), so a request's headers are never decoded and
re-encoded; it must give the same headers as :func:`rewrite` on their
latin-1 decoding (the unit tests check it on random headers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

Headers = Sequence[tuple[str, str]]


def _none() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HeaderOps:
    set: Mapping[str, str] = field(default_factory=_none)
    add: Mapping[str, str] = field(default_factory=_none)
    remove: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class HeaderRewrite:
    request: HeaderOps = HeaderOps()
    response: HeaderOps = HeaderOps()


def rewrite(ops: HeaderOps, headers: Headers) -> list[tuple[str, str]]:
    """The headers after ``ops``; the input is not changed."""
    if ops.empty:
        return list(headers)
    replaced = {name.lower(): (name, value) for name, value in ops.set.items()}
    removed = {name.lower() for name in ops.remove}
    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in headers:
        key = name.lower()
        if key in replaced:
            # The new value takes the place of the first old one, so a set
            # header stays where the client put it.
            if key not in placed:
                out.append(replaced[key])
                placed.add(key)
            continue
        out.append((name, value))
    out.extend(pair for key, pair in replaced.items() if key not in placed)
    out.extend(ops.add.items())
    if removed:
        out = [(name, value) for name, value in out if name.lower() not in removed]
    return out


@dataclass(frozen=True, slots=True)
class ByteOps:
    """:class:`HeaderOps` in latin-1 bytes, keyed by lowercase name, made once per policy."""

    #: lowercase name -> (name as written, value), in the order ``rewrite`` places them
    set: Mapping[bytes, tuple[bytes, bytes]]
    add: tuple[tuple[bytes, bytes], ...]
    remove: frozenset[bytes]


def compile_ops(ops: HeaderOps) -> ByteOps | None:
    """``ops`` for :func:`rewrite_bytes`; None when they change nothing."""
    if ops.empty:
        return None
    # Built exactly as rewrite() builds its table: a later name that differs
    # only in case replaces the value but keeps the first one's place.
    replaced: dict[bytes, tuple[bytes, bytes]] = {}
    for name, value in ops.set.items():
        replaced[name.lower().encode("latin-1")] = (name.encode("latin-1"), value.encode("latin-1"))
    return ByteOps(
        set=MappingProxyType(replaced),
        add=tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in ops.add.items()),
        remove=frozenset(name.lower().encode("latin-1") for name in ops.remove),
    )


def rewrite_bytes(
    ops: ByteOps, headers: Sequence[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """:func:`rewrite` on bytes; the input is not changed. Must agree with :func:`rewrite`."""
    replaced = ops.set
    out: list[tuple[bytes, bytes]] = []
    placed: set[bytes] = set()
    for name, value in headers:
        key = name.lower()
        if key in replaced:
            if key not in placed:
                out.append(replaced[key])
                placed.add(key)
            continue
        out.append((name, value))
    if len(placed) < len(replaced):
        out.extend(pair for key, pair in replaced.items() if key not in placed)
    out.extend(ops.add)
    removed = ops.remove
    if removed:
        out = [(name, value) for name, value in out if name.lower() not in removed]
    return out
