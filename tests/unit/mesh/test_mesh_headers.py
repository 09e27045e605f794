"""Header rewrites set, add and remove headers, case-insensitively, keeping order."""

from __future__ import annotations

from types import MappingProxyType

from dirigent.mesh.policy.headers import HeaderOps, rewrite

HEADERS = [("Host", "payments"), ("X-Trace", "a"), ("Accept", "*/*"), ("x-trace", "b")]


def test_no_operations_leave_the_headers_as_they_were() -> None:
    assert rewrite(HeaderOps(), HEADERS) == HEADERS


def test_set_replaces_every_value_in_the_place_of_the_first() -> None:
    ops = HeaderOps(set=MappingProxyType({"x-trace": "z"}))
    assert rewrite(ops, HEADERS) == [("Host", "payments"), ("x-trace", "z"), ("Accept", "*/*")]


def test_set_of_a_missing_header_appends_it() -> None:
    ops = HeaderOps(set=MappingProxyType({"x-new": "1"}))
    assert rewrite(ops, [("Host", "h")]) == [("Host", "h"), ("x-new", "1")]


def test_add_keeps_existing_values() -> None:
    ops = HeaderOps(add=MappingProxyType({"Accept": "text/html"}))
    assert rewrite(ops, [("Accept", "*/*")]) == [("Accept", "*/*"), ("Accept", "text/html")]


def test_remove_drops_every_value_whatever_the_case() -> None:
    ops = HeaderOps(remove=frozenset({"X-TRACE"}))
    assert rewrite(ops, HEADERS) == [("Host", "payments"), ("Accept", "*/*")]


def test_remove_has_the_last_word_over_set_and_add() -> None:
    ops = HeaderOps(
        set=MappingProxyType({"x-a": "1"}),
        add=MappingProxyType({"x-a": "2"}),
        remove=frozenset({"x-a"}),
    )
    assert rewrite(ops, []) == []


def test_set_then_add_gives_the_new_value_and_the_added_one() -> None:
    ops = HeaderOps(set=MappingProxyType({"x-a": "1"}), add=MappingProxyType({"x-a": "2"}))
    assert rewrite(ops, [("x-a", "0")]) == [("x-a", "1"), ("x-a", "2")]


def test_the_input_is_not_changed() -> None:
    headers = list(HEADERS)
    rewrite(HeaderOps(remove=frozenset({"host"})), headers)
    assert headers == HEADERS
