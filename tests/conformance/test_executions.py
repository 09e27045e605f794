"""Every recorded AWS execution in the dev corpus, run as ``dirigent run`` runs it.

A case passes when status, error, cause and output agree with AWS's recording
(masked values excepted, numbers by value) and, where the full history was
recorded, the event sequence agrees too. Cases we knowingly fail are listed with
their reason in ``known_failures.json``: a listed case that starts passing fails
this suite as well, so the list only ever shrinks on purpose.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dirigent.entropy import SeededEntropy
from dirigent.testing.local import run_local
from tests.conformance import corpus

KNOWN = json.loads((Path(__file__).parent / "known_failures.json").read_text())
CASES = corpus.dev_cases()
MACHINE = "conformance"
START = datetime(2024, 11, 4, 11, 40, 50, tzinfo=UTC)


def run_case(
    case: corpus.Case, *, checkpoint_every_step: bool = False
) -> tuple[list[str], list[str] | None]:
    definition = (case.path / "definition.json").read_text()
    execution_input = case.load("input.json")
    mocks = corpus.mock_config(case, MACHINE)
    config, functions = mocks if mocks else (None, {})
    result = run_local(
        definition,
        execution_input,
        mock_config=config,
        test_case="Recorded" if config else None,
        state_machine_name=MACHINE,
        execution_name="conformance-execution",
        functions=corpus.lambda_doubles(functions),
        virtual_time=True,
        entropy=SeededEntropy(7),
        start_time=START,
        checkpoint_every_step=checkpoint_every_step,
    )
    outcome = corpus.judge(
        case.load("expected.json"),
        {
            "status": result.status,
            "output": result.output,
            "error": result.error,
            "cause": result.cause,
        },
    )
    history = None
    if case.has("history.json"):
        history = corpus.compare_history(
            case.load("history.json"), corpus.history_shape(result.history)
        )
    return outcome, history


_results: dict[str, tuple[list[str], list[str] | None]] = {}


def _result(case: corpus.Case) -> tuple[list[str], list[str] | None]:
    if case.id not in _results:
        _results[case.id] = run_case(case)
    return _results[case.id]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_execution_matches_aws_recording(case: corpus.Case) -> None:
    outcome, _ = _result(case)
    reason = KNOWN["executions"].get(case.id)
    if reason is None:
        assert not outcome, "; ".join(outcome)
    else:
        assert outcome, f"now passes: remove it from known_failures.json ({reason})"


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.has("history.json")],
    ids=[c.id for c in CASES if c.has("history.json")],
)
def test_history_matches_aws_recording(case: corpus.Case) -> None:
    _, history = _result(case)
    assert history is not None
    reason = KNOWN["histories"].get(case.id)
    if reason is None:
        assert not history, "; ".join(history)
    else:
        assert history, f"now matches: remove it from known_failures.json ({reason})"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_execution_resumed_from_its_snapshot_after_every_step_ends_the_same(
    case: corpus.Case,
) -> None:
    """Folding into a snapshot and restoring, as the engine does after a crash, changes nothing."""
    assert run_case(case, checkpoint_every_step=True) == _result(case)


def test_known_failures_stay_within_the_targets() -> None:
    histories = sum(1 for c in CASES if c.has("history.json"))
    passing = 1 - len(KNOWN["executions"]) / len(CASES)
    matching = 1 - len(KNOWN["histories"]) / histories
    assert passing >= 0.98, f"execution cases passing {passing:.1%} < 98%"
    assert matching >= 0.95, f"histories matching {matching:.1%} < 95%"
    unknown = (set(KNOWN["executions"]) | set(KNOWN["histories"])) - {c.id for c in CASES}
    assert not unknown, f"known failures name cases that do not exist: {sorted(unknown)}"


def test_every_known_failure_has_a_reason() -> None:
    for section in ("executions", "histories"):
        for case_id, reason in KNOWN[section].items():
            assert isinstance(reason, str), case_id
            assert len(reason) > 10, case_id


def _summary() -> dict[str, Any]:  # pragma: no cover - a helper for humans
    return {c.id: _result(c) for c in CASES}
