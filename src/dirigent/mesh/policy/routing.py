"""Route matching: find the first route whose conditions a request meets.

Conditions mirror Istio's ``HTTPMatchRequest``: the path (exact, prefix or
regex, on the path without its query string), the method, and headers
(exact, prefix, regex, or merely present). Within one :class:`RouteMatch`
every condition must hold; a route holds a list of them and matches when any
one does (an empty list matches everything); the first route that matches
wins, so specific routes go before catch-alls. Regexes must match the whole
value, as Envoy's do.

This module must never look at a body or do I/O: it sees a
:class:`RequestHead` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar


class MatchKind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class StringMatch:
    kind: MatchKind
    value: str
    #: compiled once when built, so matching a request compiles nothing
    pattern: re.Pattern[str] | None = None

    @classmethod
    def exact(cls, value: str) -> StringMatch:
        return cls(MatchKind.EXACT, value)

    @classmethod
    def prefix(cls, value: str) -> StringMatch:
        return cls(MatchKind.PREFIX, value)

    @classmethod
    def regex(cls, value: str) -> StringMatch:
        """Raises ``re.error`` for a bad pattern; the manifest reports it before this."""
        return cls(MatchKind.REGEX, value, re.compile(value))

    def matches(self, text: str) -> bool:
        if self.kind is MatchKind.EXACT:
            return text == self.value
        if self.kind is MatchKind.PREFIX:
            return text.startswith(self.value)
        assert self.pattern is not None
        return self.pattern.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A condition on one header; ``value`` None means "present" (or absent, if negated)."""

    name: str
    value: StringMatch | None = None
    #: with ``value`` None: True asks for the header to be absent
    absent: bool = False

    def matches(self, headers: Mapping[str, str]) -> bool:
        found = headers.get(self.name.lower())
        if self.value is None:
            return (found is None) if self.absent else (found is not None)
        return found is not None and self.value.matches(found)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What routing may look at; header names are lowercase, repeated ones joined by ', '."""

    method: str
    path: str
    headers: Mapping[str, str]

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """All of these must hold; a condition left as None or empty is not checked."""

    path: StringMatch | None = None
    method: StringMatch | None = None
    headers: tuple[HeaderMatch, ...] = ()

    def matches(self, request: RequestHead) -> bool:
        if self.path is not None and not self.path.matches(request.path_only):
            return False
        if self.method is not None and not self.method.matches(request.method):
            return False
        return all(header.matches(request.headers) for header in self.headers)


class Matchable(Protocol):
    @property
    def matches(self) -> tuple[RouteMatch, ...]: ...


R = TypeVar("R", bound=Matchable)


def route_matches(matches: Sequence[RouteMatch], request: RequestHead) -> bool:
    """Whether any of ``matches`` holds; an empty list holds for every request."""
    return not matches or any(match.matches(request) for match in matches)


def first_match(routes: Sequence[R], request: RequestHead) -> R | None:
    """The first route any of whose matches holds, or None (the caller answers 404)."""
    for route in routes:
        if route_matches(route.matches, request):
            return route
    return None
