"""Route matching on path, method and headers; the first matching route wins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dirigent.mesh.policy.routing import (
    HeaderMatch,
    RequestHead,
    RouteMatch,
    StringMatch,
    first_match,
)


@dataclass(frozen=True)
class Route:
    name: str
    matches: tuple[RouteMatch, ...] = ()


def request(path: str = "/", method: str = "GET", **headers: str) -> RequestHead:
    return RequestHead(method, path, {k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("match", "path", "expected"),
    [
        (StringMatch.exact("/charge"), "/charge", True),
        (StringMatch.exact("/charge"), "/charge/1", False),
        (StringMatch.exact("/charge"), "/charge?x=1", True),
        (StringMatch.prefix("/api/"), "/api/v1", True),
        (StringMatch.prefix("/api/"), "/apix", False),
        (StringMatch.regex(r"/orders/\d+"), "/orders/42", True),
        (StringMatch.regex(r"/orders/\d+"), "/orders/42/items", False),
        (StringMatch.regex(r"/orders/\d+"), "/x/orders/42", False),
    ],
)
def test_path_matching_ignores_the_query_and_regexes_match_whole_paths(
    match: StringMatch, path: str, expected: bool
) -> None:
    assert RouteMatch(path=match).matches(request(path)) is expected


def test_method_must_match_when_given() -> None:
    post = RouteMatch(method=StringMatch.exact("POST"))
    assert post.matches(request(method="POST"))
    assert not post.matches(request(method="GET"))


def test_header_matches_exact_prefix_regex_and_presence() -> None:
    head = request(x_user="alice", x_env="canary-eu", x_debug="")
    assert HeaderMatch("X-User", StringMatch.exact("alice")).matches(head.headers)
    assert not HeaderMatch("x-user", StringMatch.exact("bob")).matches(head.headers)
    assert HeaderMatch("x-env", StringMatch.prefix("canary")).matches(head.headers)
    assert HeaderMatch("x-env", StringMatch.regex(r"canary-\w\w")).matches(head.headers)
    assert HeaderMatch("x-debug").matches(head.headers)
    assert not HeaderMatch("x-missing").matches(head.headers)
    assert HeaderMatch("x-missing", absent=True).matches(head.headers)
    assert not HeaderMatch("x-debug", absent=True).matches(head.headers)


def test_a_value_condition_on_a_missing_header_does_not_match() -> None:
    assert not HeaderMatch("x-user", StringMatch.prefix("")).matches({})


def test_every_condition_of_one_match_must_hold() -> None:
    match = RouteMatch(
        path=StringMatch.prefix("/charge"),
        method=StringMatch.exact("POST"),
        headers=(HeaderMatch("x-user", StringMatch.exact("alice")),),
    )
    assert match.matches(request("/charge", "POST", x_user="alice"))
    assert not match.matches(request("/charge", "POST", x_user="bob"))
    assert not match.matches(request("/charge", "GET", x_user="alice"))


def test_the_first_matching_route_wins_over_later_ones() -> None:
    canary = Route("canary", (RouteMatch(headers=(HeaderMatch("x-canary"),)),))
    api = Route("api", (RouteMatch(path=StringMatch.prefix("/api")),))
    rest = Route("rest")
    routes = [canary, api, rest]
    assert first_match(routes, request("/api", x_canary="1")) is canary
    assert first_match(routes, request("/api")) is api
    assert first_match(routes, request("/other")) is rest


def test_a_route_matches_when_any_of_its_matches_holds() -> None:
    either = Route(
        "either",
        (RouteMatch(path=StringMatch.exact("/a")), RouteMatch(path=StringMatch.exact("/b"))),
    )
    assert first_match([either], request("/b")) is either
    assert first_match([either], request("/c")) is None


def test_no_route_matching_gives_none() -> None:
    assert first_match([], request()) is None
