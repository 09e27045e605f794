"""Intrinsic functions: parsing, each function's recorded behaviour, and AWS's failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dirigent.asl.failure import INTRINSIC_FAILURE, StatesFailure
from dirigent.asl.intrinsics import (
    IntrinsicSyntaxError,
    evaluate_intrinsic,
    is_intrinsic,
    parse_intrinsic,
)
from dirigent.asl.jsonpath import PathNotFound
from dirigent.asl.scope import Scope

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "asl" / "dev"


class RecordingEntropy:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int | None]] = []

    def uuid4(self) -> str:
        return "00000000-0000-4000-8000-000000000000"

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        self.calls.append((start, end, seed))
        return start

    def random_float(self, seed: int | None) -> float:
        return 0.5


def scope(document: Any = None, variables: dict[str, Any] | None = None) -> Scope:
    context = {"Execution": {"Input": document}, "StateMachine": {"Name": "a-b-c"}}
    return Scope(document, context, variables or {}, RecordingEntropy())


def run(expression: str, document: Any = None, **variables: Any) -> Any:
    return evaluate_intrinsic(expression, scope(document, variables))


def fails(expression: str, document: Any = None) -> StatesFailure:
    with pytest.raises(StatesFailure) as caught:
        run(expression, document)
    assert caught.value.error == INTRINSIC_FAILURE
    return caught.value


# --------------------------------------------------------------------------- syntax


def test_is_intrinsic_tells_calls_from_paths() -> None:
    assert is_intrinsic("States.Array($.a)")
    assert not is_intrinsic("$.States")
    assert not is_intrinsic("States.Nothing")


def test_an_expression_is_parsed_once_and_cached() -> None:
    assert parse_intrinsic("States.Array(1, 'x')") is parse_intrinsic("States.Array(1, 'x')")


def test_literals_paths_and_nested_calls_are_arguments() -> None:
    value = run(
        "States.Array('s', 1, -2.5, true, false, null, $.a, $$.StateMachine.Name, $v, "
        "States.MathAdd(1, 2))",
        {"a": [1]},
        v="var",
    )
    assert value == ["s", 1, -2.5, True, False, None, [1], "a-b-c", "var", 3]


def test_string_escapes_yield_the_reserved_characters() -> None:
    assert run(r"States.Array('it\'s \{x\} a\\b')") == ["it's {x} a\\b"]


def test_a_path_argument_keeps_commas_and_parentheses_inside_brackets() -> None:
    document = {"a,b": 1, "xs": [{"v": 1}, {"v": 2}]}
    assert run("States.Array($['a,b'], $.xs[?(@.v > 1)])", document) == [1, [{"v": 2}]]


@pytest.mark.parametrize(
    "expression",
    [
        "States.Nope(1)",
        "States.Array(1",
        "States.Array(1) trailing",
        "States.Array('open)",
        r"States.Array('bad \n escape')",
        "States.Array(bare)",
        "States.Array(" * 11 + ")" * 11,
    ],
)
def test_malformed_expressions_are_syntax_errors(expression: str) -> None:
    with pytest.raises(IntrinsicSyntaxError):
        parse_intrinsic(expression)


def test_evaluating_a_malformed_expression_is_an_intrinsic_failure() -> None:
    fails("States.Array(1")


def test_a_missing_path_argument_raises_path_not_found_for_the_caller_to_word() -> None:
    with pytest.raises(PathNotFound) as caught:
        run("States.Format('{}', $.missing)", {})
    assert caught.value.path == "$.missing"


def test_a_wrong_number_of_arguments_fails() -> None:
    fails("States.ArrayLength()")
    fails("States.UUID(1)")


# --------------------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("States.Format('a {} b {}', 1, 'x')", "a 1 b x"),
        ("States.Format('{}', 1.5)", "1.5"),
        ("States.Format('{} {}', null, true)", "null true"),
        ("States.Format('esc \\{\\} {}', 1)", "esc {} 1"),
        ("States.Format('{}', $.o)", "{Arg1=1, Arg2=[]}"),
        ("States.Format('{}', $.l)", "[a, 1, {k=v}]"),
        ("States.Format($.t, 'x')", "<x>"),
        ("States.StringToJson('{\"a\": [1]}')", {"a": [1]}),
        ("States.StringToJson(' ')", None),
        ("States.StringToJson('-0')", 0),
        ("States.JsonToString($.o)", '{"Arg1":1,"Arg2":[]}'),
        ("States.JsonToString(1.1)", "1.1"),
        ("States.Array()", []),
        ("States.ArrayPartition($.n, 3)", [[0, 1, 2], [3]]),
        ("States.ArrayPartition($.e, 3)", []),
        ("States.ArrayContains($.l, $.o2)", True),
        ("States.ArrayContains($.l, 'b')", False),
        ("States.ArrayRange(0, 9, 3)", [0, 3, 6, 9]),
        ("States.ArrayRange(0, 10, 3)", [0, 3, 6, 9]),
        ("States.ArrayRange(3, 1, -1)", [3, 2, 1]),
        ("States.ArrayGetItem($.n, 1)", 1),
        ("States.ArrayLength($.n)", 4),
        ("States.ArrayUnique($.d)", [1, 1.0, {"a": 1, "b": 2}, None]),
        ("States.Base64Encode('Data to encode')", "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode"),
        ("States.Hash('input data', 'MD5')", "812f45842bc6d66ee14572ce20db8e86"),
        ("States.Hash('input data', 'SHA-1')", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("States.JsonMerge($.j1, $.j2, false)", {"a": {"y": 2}, "b": 1, "c": 3}),
        ("States.MathAdd(1.49, 1.5)", 3),
        ("States.MathAdd(-1.5, -1.51)", -3),
        ("States.MathAdd(-0.5, 0)", 0),
        ("States.MathAdd($.i, -1)", 4),
        ("States.StringSplit(', , ,', ',')", [" ", " "]),
        (
            "States.StringSplit('split on T and \nnew line', 'T\n')",
            ["split on ", " and ", "new line"],
        ),
        ("States.StringSplit(',,,', ',')", []),
        ("States.UUID()", "00000000-0000-4000-8000-000000000000"),
    ],
)
def test_each_function_computes_what_aws_computes(expression: str, expected: Any) -> None:
    document = {
        "o": {"Arg1": 1, "Arg2": []},
        "o2": {"k": "v"},
        "l": ["a", 1, {"k": "v"}],
        "t": "<{}>",
        "n": [0, 1, 2, 3],
        "e": [],
        "d": [1, 1, 1.0, {"a": 1, "b": 2}, {"b": 2, "a": 1}, None, None],
        "j1": {"a": {"x": 1}, "b": 1},
        "j2": {"a": {"y": 2}, "c": 3},
        "i": 5,
    }
    value = run(expression, document)
    assert value == expected
    assert type(value) is type(expected)


def test_math_random_takes_its_number_from_the_scopes_entropy() -> None:
    current = scope()
    assert evaluate_intrinsic("States.MathRandom(1, 10, 7)", current) == 1
    assert evaluate_intrinsic("States.MathRandom(12.5, 44.51)", current) == 13
    assert current.entropy.calls == [(1, 10, 7), (13, 45, None)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "expression",
    [
        "States.Format('{} {}', 1)",
        "States.StringToJson('{nope')",
        "States.StringToJson(1)",
        "States.ArrayPartition($.n, 0)",
        "States.ArrayPartition('x', 1)",
        "States.ArrayRange(0, 1, 0)",
        "States.ArrayRange(0, 2000, 1)",
        "States.ArrayGetItem($.n, 9)",
        "States.ArrayGetItem($.n, 1.5)",
        "States.Base64Decode('%%%')",
        "States.Hash('x', 'SHA-999')",
        "States.JsonMerge($.n, $.n, false)",
        "States.JsonMerge($.o, $.o, true)",
        "States.MathAdd('1', 2)",
        "States.MathRandom(5, 5)",
        "States.StringSplit(1, ',')",
    ],
)
def test_bad_arguments_are_intrinsic_failures(expression: str) -> None:
    failure = fails(expression, {"n": [1, 2], "o": {}})
    assert "Invalid arguments in States." in failure.cause


def test_encoding_refuses_strings_longer_than_ten_thousand_characters() -> None:
    fails("States.Base64Encode($.s)", {"s": "x" * 10_001})


# --------------------------------------------------------------------------- the recorded corpus


def _recorded_cases() -> list[Any]:
    cases = []
    for directory in sorted(CORPUS.glob("intrinsic_functions__*")):
        if "jsonata" in directory.name:
            continue
        expected = json.loads((directory / "expected.json").read_text())
        state = next(
            iter(json.loads((directory / "definition.json").read_text())["States"].values())
        )
        if expected["masked"] or expected["status"] != "SUCCEEDED" or "ResultPath" in state:
            continue
        document = json.loads((directory / "input.json").read_text())
        for key, expression in state.get("Parameters", {}).items():
            if key.endswith(".$") and is_intrinsic(expression):
                want = expected["output"][key[:-2]]
                cases.append(pytest.param(expression, document, want, id=directory.name))
    return cases


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the ASL corpus is not checked out")
@pytest.mark.parametrize(("expression", "document", "expected"), _recorded_cases())
def test_recorded_aws_results_are_reproduced(expression: str, document: Any, expected: Any) -> None:
    value = run(expression, document)
    assert value == expected
    assert type(value) is type(expected)
