"""``dirigent validate`` and ``dirigent run`` as a user runs them: a real process.

Every bad input must end in a clear message and an exit code, never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:charge"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
CHARGE = {
    "StartAt": "Charge",
    "States": {"Charge": {"Type": "Task", "Resource": LAMBDA, "End": True}},
}
MOCKS = {
    "StateMachines": {
        "order": {
            "TestCases": {"Paid": {"Charge": "Ok"}, "Declined": {"Charge": "No"}},
        }
    },
    "MockedResponses": {
        "Ok": {"0": {"Return": {"paid": True}}},
        "No": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "insufficient funds"}}},
    },
}


def dirigent(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "dirigent.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    if isinstance(content, str | bytes):
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    else:
        path.write_text(json.dumps(content))
    return path


# --------------------------------------------------------------------------- validate


def test_validate_a_valid_definition_exits_0(tmp_path: Path) -> None:
    done = dirigent("validate", write(tmp_path, "ok.json", PASS))
    assert done.returncode == 0
    assert "valid" in done.stdout


def test_validate_json_reports_a_valid_definition(tmp_path: Path) -> None:
    done = dirigent("validate", write(tmp_path, "ok.json", PASS), "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"valid": True, "errors": []}


def test_validate_json_lists_every_problem_with_its_pointer(tmp_path: Path) -> None:
    broken = {"StartAt": "P", "States": {"P": {"Type": "Pass"}, "Q": {"Type": "Pass", "End": True}}}
    done = dirigent("validate", write(tmp_path, "bad.json", broken), "--json")
    assert done.returncode == 1
    verdict = json.loads(done.stdout)
    assert verdict["valid"] is False
    assert all(set(e) == {"pointer", "message"} for e in verdict["errors"])
    pointers = {e["pointer"] for e in verdict["errors"]}
    assert "/States/P" in pointers
    assert "/States/Q" in pointers


def test_validate_without_json_prints_problems_on_stderr(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", {"StartAt": "P", "States": {"P": {"Type": "Pass"}}})
    done = dirigent("validate", path)
    assert done.returncode == 1
    assert f"{path}: Either 'Next' or 'End' is required at /States/P" in done.stderr


def test_validate_a_missing_file_is_bad_usage(tmp_path: Path) -> None:
    done = dirigent("validate", tmp_path / "absent.json")
    assert done.returncode == 2
    assert "cannot read" in done.stderr


# --------------------------------------------------------------------------- run


def test_run_prints_the_output_and_exits_0(tmp_path: Path) -> None:
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--input", '{"a": [1, 2]}')
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"a": [1, 2]}


def test_run_reads_the_input_from_a_file(tmp_path: Path) -> None:
    source = write(tmp_path, "input.json", {"from": "file"})
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--input-file", source)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"from": "file"}


def test_run_without_input_starts_with_an_empty_object(tmp_path: Path) -> None:
    done = dirigent("run", write(tmp_path, "ok.json", PASS))
    assert json.loads(done.stdout) == {}


def test_run_refuses_both_input_and_input_file(tmp_path: Path) -> None:
    source = write(tmp_path, "input.json", {})
    done = dirigent(
        "run", write(tmp_path, "ok.json", PASS), "--input", "{}", "--input-file", source
    )
    assert done.returncode == 2


def test_run_json_prints_status_output_error_cause_and_history(tmp_path: Path) -> None:
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--input", "[1]", "--json")
    assert done.returncode == 0
    result = json.loads(done.stdout)
    assert set(result) == {"status", "output", "error", "cause", "history"}
    assert (result["status"], result["output"], result["error"], result["cause"]) == (
        "SUCCEEDED",
        [1],
        None,
        None,
    )
    assert [e["type"] for e in result["history"]] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in result["history"]] == [1, 2, 3, 4]


def test_run_with_a_mocked_success_exits_0(tmp_path: Path) -> None:
    definition = write(tmp_path, "order.asl.json", CHARGE)
    mocks = write(tmp_path, "mocks.json", MOCKS)
    done = dirigent("run", definition, "--mock-config", mocks, "--test-case", "Paid")
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"paid": True}


def test_a_failed_execution_exits_1_with_error_and_cause(tmp_path: Path) -> None:
    definition = write(tmp_path, "order.asl.json", CHARGE)
    mocks = write(tmp_path, "mocks.json", MOCKS)
    done = dirigent("run", definition, "--mock-config", mocks, "--test-case", "Declined")
    assert done.returncode == 1
    assert "FAILED: Card.Declined" in done.stderr
    assert "insufficient funds" in done.stderr
    result = json.loads(
        dirigent(
            "run", definition, "--mock-config", mocks, "--test-case", "Declined", "--json"
        ).stdout
    )
    assert (result["status"], result["error"], result["cause"]) == (
        "FAILED",
        "Card.Declined",
        "insufficient funds",
    )


def test_name_chooses_the_state_machine_in_the_mock_config(tmp_path: Path) -> None:
    definition = write(tmp_path, "charge.json", CHARGE)
    mocks = write(tmp_path, "mocks.json", MOCKS)
    wrong = dirigent("run", definition, "--mock-config", mocks, "--test-case", "Paid")
    assert wrong.returncode == 2
    assert "'charge'" in wrong.stderr
    assert "--name" in wrong.stderr
    right = dirigent(
        "run", definition, "--name", "order", "--mock-config", mocks, "--test-case", "Paid"
    )
    assert right.returncode == 0


def test_test_case_without_mock_config_is_bad_usage(tmp_path: Path) -> None:
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--test-case", "Paid")
    assert done.returncode == 2
    assert "--test-case needs --mock-config" in done.stderr


def test_an_unknown_test_case_is_bad_usage(tmp_path: Path) -> None:
    definition = write(tmp_path, "order.json", CHARGE)
    mocks = write(tmp_path, "mocks.json", MOCKS)
    done = dirigent("run", definition, "--mock-config", mocks, "--test-case", "Refunded")
    assert done.returncode == 2
    assert "no test case 'Refunded'" in done.stderr
    assert "Declined, Paid" in done.stderr


def test_virtual_time_runs_an_hour_long_wait_at_once(tmp_path: Path) -> None:
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    done = dirigent(
        "run", write(tmp_path, "wait.json", definition), "--virtual-time", "--json", timeout=60
    )
    assert done.returncode == 0
    events = json.loads(done.stdout)["history"]
    assert events[-1]["type"] == "ExecutionSucceeded"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"StartAt": "P", "States": ', "Invalid JSON"),
        (
            '{"StartAt": "P", "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
            "Duplicate field 'StartAt'",
        ),
        (
            '{"StartAt": "P", "Colour": 1, "States": {"P": {"Type": "Pass", "End": true}}}',
            '"Colour" is not supported',
        ),
        ('{"StartAt": 5, "States": {"P": {"Type": "Pass", "End": true}}}', "must be a string"),
        (
            '{"StartAt": "P", "States": {"P": {"Type": "Pass"}}}',
            "Either 'Next' or 'End' is required",
        ),
        (
            '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}, '
            '"Q": {"Type": "Pass", "End": true}}}',
            'State "Q" is not reachable',
        ),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("[]", "must be a JSON object"),
        ("", "Invalid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
    ],
    ids=[
        "malformed",
        "duplicate-key",
        "unknown-field",
        "wrong-type",
        "missing-next",
        "unreachable",
        "deeply-nested",
        "not-an-object",
        "empty",
        "not-utf8",
    ],
)
def test_a_bad_definition_is_reported_clearly_by_validate_and_run(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = write(tmp_path, "bad.json", text)
    checked = dirigent("validate", path)
    assert checked.returncode == 1
    assert message in checked.stderr
    ran = dirigent("run", path)
    assert ran.returncode == 2
    assert message in ran.stderr
    assert ran.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Invalid JSON"),
        ('{"a": 1, "a": 2}', "Duplicate field 'a'"),
        # 60,000 levels: one argument may be at most 128 KiB on Linux
        ("[" * 60_000 + "]" * 60_000, "nested deeper than"),
        ("NaN", "not a valid JSON value"),
    ],
    ids=["malformed", "duplicate-key", "deeply-nested", "nan"],
)
def test_bad_input_is_bad_usage(tmp_path: Path, text: str, message: str) -> None:
    definition = write(tmp_path, "ok.json", PASS)
    inline = dirigent("run", definition, "--input", text)
    assert inline.returncode == 2
    assert "--input" in inline.stderr
    assert message in inline.stderr
    from_file = dirigent("run", definition, "--input-file", write(tmp_path, "in.json", text))
    assert from_file.returncode == 2
    assert "in.json" in from_file.stderr
    assert message in from_file.stderr


def test_an_input_over_256_kib_is_refused(tmp_path: Path) -> None:
    big = write(tmp_path, "big.json", {"blob": "x" * (256 * 1024)})
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--input-file", big)
    assert done.returncode == 2
    assert "256 KiB" in done.stderr


def test_a_missing_input_file_is_bad_usage(tmp_path: Path) -> None:
    done = dirigent("run", write(tmp_path, "ok.json", PASS), "--input-file", tmp_path / "no.json")
    assert done.returncode == 2
    assert "no.json: cannot read" in done.stderr


def test_a_missing_definition_is_bad_usage(tmp_path: Path) -> None:
    done = dirigent("run", tmp_path / "absent.json")
    assert done.returncode == 2
    assert "absent.json: cannot read" in done.stderr


def test_a_directory_as_definition_is_bad_usage(tmp_path: Path) -> None:
    done = dirigent("run", tmp_path)
    assert done.returncode == 2
    assert "cannot read" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "Invalid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ("[]", "expected a JSON object"),
        ('{"StateMachines": {}, "StateMachines": {}}', "Duplicate field"),
        (json.dumps({**MOCKS, "MockedResponses": {"Ok": {"2-1": {"Return": 1}}}}), "'2-1'"),
        (
            json.dumps({**MOCKS, "MockedResponses": {"Ok": {"0": {"Return": 1, "Throw": {}}}}}),
            "exactly one of Return or Throw",
        ),
    ],
    ids=["malformed", "deeply-nested", "not-an-object", "duplicate-key", "bad-range", "both"],
)
def test_a_bad_mock_config_is_bad_usage(tmp_path: Path, content: str, message: str) -> None:
    definition = write(tmp_path, "order.json", CHARGE)
    mocks = write(tmp_path, "mocks.json", content)
    done = dirigent("run", definition, "--mock-config", mocks, "--test-case", "Paid")
    assert done.returncode == 2
    assert message in done.stderr


def test_a_state_output_over_256_kib_fails_the_execution(tmp_path: Path) -> None:
    definition = {
        "StartAt": "Grow",
        "States": {
            "Grow": {
                "Type": "Pass",
                "Parameters": {"a.$": "$.blob", "b.$": "$.blob", "c.$": "$.blob"},
                "End": True,
            }
        },
    }
    source = write(tmp_path, "in.json", {"blob": "x" * (100 * 1024)})
    done = dirigent("run", write(tmp_path, "grow.json", definition), "--input-file", source)
    assert done.returncode == 1
    assert "States.DataLimitExceeded" in done.stderr
