"""JSONPath: Jayway's semantics, AWS's causes, and the path fields (InputPath, ResultPath...)."""

from __future__ import annotations

from typing import Any

import pytest

from dirigent.asl.failure import RUNTIME, StatesFailure
from dirigent.asl.jsonpath import (
    PathNotFound,
    PathSyntaxError,
    apply_io_path,
    apply_result_path,
    compile_path,
    evaluate,
    not_found_message,
)
from dirigent.asl.model import MISSING
from dirigent.asl.scope import Scope


class FixedEntropy:
    def uuid4(self) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        return start

    def random_float(self, seed: int | None) -> float:
        return 0.5


DOC: dict[str, Any] = {
    "a": {"b": [1, 2, {"c": 3}]},
    "users": [{"status": 0, "y": 1}, {"status": 1, "y": 2}, {"y": 3, "name": "zed"}],
    "s": "text",
    "n": None,
    "delivery-partner": "ups",
}


def scope(document: Any = DOC, variables: dict[str, Any] | None = None) -> Scope:
    context = {"Execution": {"Id": "arn:x", "Input": document}, "Map": {"Item": {"Index": 2}}}
    return Scope(document, context, variables or {}, FixedEntropy())


# --------------------------------------------------------------------------- definite paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.a.b", [1, 2, {"c": 3}]),
        ("$.a.b[2].c", 3),
        ("$.a.b[-1]", {"c": 3}),
        ("$['a']['b'][0]", 1),
        ('$["s"]', "text"),
        ("$.n", None),
        ("$.delivery-partner", "ups"),
        ("$.a.b.length()", 3),
        ("$.a['b','missing']", {"b": [1, 2, {"c": 3}]}),
    ],
)
def test_a_definite_path_yields_the_single_value(path: str, expected: Any) -> None:
    assert evaluate(path, scope()) == expected


def test_a_definite_path_returns_the_document_itself_not_a_copy() -> None:
    assert evaluate("$.a", scope()) is DOC["a"]


def test_context_object_paths_read_the_context() -> None:
    assert evaluate("$$.Execution.Id", scope()) == "arn:x"
    assert evaluate("$$.Map.Item.Index", scope()) == 2


def test_variable_paths_read_the_named_variable() -> None:
    variables = {"order": {"lines": [{"sku": "A"}]}, "x": 5}
    assert evaluate("$order.lines[0].sku", scope(variables=variables)) == "A"
    assert evaluate("$x", scope(variables=variables)) == 5


def test_an_undefined_variable_is_not_found() -> None:
    with pytest.raises(PathNotFound):
        evaluate("$nope.a", scope())


def test_a_backslash_other_than_an_escape_is_kept_in_a_bracketed_name() -> None:
    # Recorded on AWS: $['Test\""Name"'] reads the key Test\""Name".
    key = 'Test\\""Name"'
    assert evaluate('$[\'Test\\""Name"\']', scope({key: "Value"})) == "Value"


def test_an_escaped_quote_in_a_bracketed_name_is_the_quote() -> None:
    assert evaluate("$['it\\'s']", scope({"it's": 1})) == 1


# --------------------------------------------------------------------------- missing values


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("$.x", "No results for path: $['x']"),
        ("$.no.such.result.path", "Missing property in path $['no']"),
        ("$.a.x.y", "Missing property in path $['a']['x']"),
        ("$.a.b[10]", "No results for path: $['a']['b'][10]"),
        ("$.n[0]", "The path $['n'] is null"),
    ],
)
def test_a_missing_definite_path_raises_with_jayways_detail(path: str, detail: str) -> None:
    with pytest.raises(PathNotFound) as caught:
        evaluate(path, scope())
    assert caught.value.path == path
    assert caught.value.detail == detail


def test_a_property_of_a_string_is_not_found() -> None:
    with pytest.raises(PathNotFound, match=r"Expected to find an object with property \['y'\]"):
        evaluate("$.s.y", scope())


# --------------------------------------------------------------------------- indefinite paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.a.b[*]", [1, 2, {"c": 3}]),
        ("$.a.*", [[1, 2, {"c": 3}]]),
        ("$.a.b[1:]", [2, {"c": 3}]),
        ("$.a.b[:1]", [1]),
        ("$.a.b[-1:]", [{"c": 3}]),
        ("$.a.b[1:99]", [2, {"c": 3}]),
        ("$.users[0,2].y", [1, 3]),
        ("$.users[*].y", [1, 2, 3]),
        ("$..c", [3]),
        ("$..name", ["zed"]),
        ("$.users[?(@.status == 0)]", [{"status": 0, "y": 1}]),
        ("$.users[?(@.status)]", [{"status": 0, "y": 1}, {"status": 1, "y": 2}]),
        ("$.users[?(@.name == 'zed')].y", [3]),
        ("$.users[?(@.y > 1 && @.y < 3)].y", [2]),
        ("$.users[?(@.y < 2 || @.y > 2)].y", [1, 3]),
        ("$.users[?(!(@.y > 1))].y", [1]),
        ("$.users[?(@.status != 0)].y", [2, 3]),
        ("$.users[?(@.y in [1, 3])].y", [1, 3]),
        ("$.users[?(@.name =~ /z.*/)].y", [3]),
        ("$.users[?(@.y >= $.a.b[1])].y", [2, 3]),
        ("$.users.length()", 3),
    ],
)
def test_an_indefinite_path_yields_the_list_of_matches(path: str, expected: Any) -> None:
    assert evaluate(path, scope()) == expected


@pytest.mark.parametrize("path", ["$.item.items[1:5]", "$.items[:1].itemValue", "$.x[*]", "$..zz"])
def test_an_indefinite_path_that_matches_nothing_is_an_empty_list(path: str) -> None:
    # Recorded on AWS: Parameters {"item.$": "$.item.items[1:5]"} on {} gives {"item": []}.
    assert evaluate(path, scope({})) == []


def test_a_filter_compares_numbers_by_value_and_never_a_string_with_a_number() -> None:
    items = [{"v": 1}, {"v": 1.0}, {"v": "1"}, {"v": True}]
    assert evaluate("$[?(@.v == 1)]", scope(items)) == [{"v": 1}, {"v": 1.0}]


def test_a_deep_scan_lists_parents_before_children() -> None:
    document = {"a": 1, "b": {"a": 2, "c": {"a": 3}}}
    assert evaluate("$..a", scope(document)) == [1, 2, 3]


# --------------------------------------------------------------------------- compiling


def test_compiling_the_same_text_twice_gives_the_same_object() -> None:
    assert compile_path("$.cached.path") is compile_path("$.cached.path")


@pytest.mark.parametrize(
    ("path", "definite"),
    [("$.a[0].b", True), ("$.a[*]", False), ("$..a", False), ("$.a[?(@.x)]", False)],
)
def test_definiteness_follows_jayway(path: str, definite: bool) -> None:
    assert compile_path(path).definite is definite


@pytest.mark.parametrize("path", ["a.b", "$.a b", "$.a[", "$.a[x]", "$.a[1:2:3]", "$.a.foo()"])
def test_malformed_paths_are_syntax_errors(path: str) -> None:
    with pytest.raises(PathSyntaxError):
        compile_path(path)


# --------------------------------------------------------------------------- path fields


def test_not_found_message_is_aws_wording() -> None:
    message = not_found_message("$.ErrorX", "ErrorPath", {"Error": "e"})
    assert message == (
        "The JSONPath '$.ErrorX' specified for the field 'ErrorPath' "
        'could not be found in the input \'{"Error":"e"}\''
    )


def test_io_path_defaults_keep_the_input_and_null_gives_an_empty_object() -> None:
    assert apply_io_path(MISSING, scope()) is DOC
    assert apply_io_path("$", scope()) is DOC
    assert apply_io_path(None, scope()) == {}
    assert apply_io_path("$.a.b[0]", scope()) == 1


def test_a_missing_output_path_fails_with_the_recorded_cause() -> None:
    with pytest.raises(StatesFailure) as caught:
        apply_io_path("$.NoSuchOutputPath", scope({"x": 1}))
    assert caught.value.error == RUNTIME
    assert caught.value.cause == (
        "Invalid path '$.NoSuchOutputPath' : No results for path: $['NoSuchOutputPath']"
    )


def test_a_missing_intermediate_in_output_path_fails_with_the_recorded_cause() -> None:
    with pytest.raises(StatesFailure) as caught:
        apply_io_path("$.no.such.result.path", scope({}))
    assert caught.value.cause == (
        "Invalid path '$.no.such.result.path' : Missing property in path $['no']"
    )


def test_result_path_defaults_replace_the_input_and_null_discards_the_result() -> None:
    assert apply_result_path({"a": 1}, {"r": 2}, MISSING) == {"r": 2}
    assert apply_result_path({"a": 1}, {"r": 2}, "$") == {"r": 2}
    assert apply_result_path({"a": 1}, {"r": 2}, None) == {"a": 1}


def test_result_path_creates_missing_objects_without_touching_the_input() -> None:
    raw = {"a": 1, "keep": {"deep": [1]}}
    merged = apply_result_path(raw, "R", "$.x.y")
    assert merged == {"a": 1, "keep": {"deep": [1]}, "x": {"y": "R"}}
    assert raw == {"a": 1, "keep": {"deep": [1]}}


def test_result_path_replaces_an_existing_value_and_an_array_element() -> None:
    raw = {"a": {"b": [1, 2], "c": 0}}
    assert apply_result_path(raw, 9, "$.a.b[1]") == {"a": {"b": [1, 9], "c": 0}}
    assert apply_result_path(raw, 9, "$.a.c") == {"a": {"b": [1, 2], "c": 9}}
    assert raw == {"a": {"b": [1, 2], "c": 0}}


@pytest.mark.parametrize(("raw", "path"), [("text", "$.x"), ({"a": "s"}, "$.a.b"), ([1], "$[3]")])
def test_result_path_that_cannot_be_written_fails_with_states_runtime(raw: Any, path: str) -> None:
    with pytest.raises(StatesFailure) as caught:
        apply_result_path(raw, 1, path)
    assert caught.value.error == RUNTIME
    assert caught.value.cause.startswith(f"Unable to apply ReferencePath {path} to input ")


def test_result_path_must_be_a_reference_path() -> None:
    with pytest.raises(PathSyntaxError):
        apply_result_path({}, 1, "$.a[*]")
