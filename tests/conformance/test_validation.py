"""Definition validation judged against AWS, asl-validator and the executions AWS ran.

Three acceptances, all over the corpus in ``<repo>/../shared/conformance/asl``
(or ``$DIRIGENT_ASL_CORPUS``); a missing corpus fails the run, it never skips:

* every ``validation/aws`` case gets AWS's valid/invalid verdict, no exceptions;
* the asl-validator files agree with their expected verdict at least 90 % of the
  time, and each disagreement is listed in ``validation_known_failures.json``
  with its reason: an unlisted disagreement fails, and so does a listed case
  that starts agreeing (so the list only shrinks on purpose);
* every execution definition in ``dev/`` parses (AWS ran all of them).

How many of our first diagnostics use AWS's own wording is measured here too
(``test_aws_wording_is_reported``) and printed, not asserted case by case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dirigent.asl.parser import parse_definition
from dirigent.errors import DefinitionError, Diagnostic
from tests.conformance import corpus

KNOWN = json.loads((Path(__file__).parent / "validation_known_failures.json").read_text())
ROOT = corpus.corpus_root()
VALIDATION = ROOT / "validation"
AWS_CASES = sorted(p for p in (VALIDATION / "aws").iterdir() if p.is_dir())
MANIFEST: list[dict[str, Any]] = json.loads(
    (VALIDATION / "asl_validator_manifest.json").read_text()
)
DEV_DEFINITIONS = sorted((ROOT / "dev").glob("*/definition.json"))
MIN_ASL_VALIDATOR_AGREEMENT = 0.90


def verdict(source: bytes, machine_type: str = "STANDARD") -> list[Diagnostic]:
    """Our diagnostics for ``source``: empty when the definition is valid."""
    try:
        parse_definition(
            source, machine_type="EXPRESS" if machine_type == "EXPRESS" else "STANDARD"
        )
    except DefinitionError as exc:
        found = list(exc.diagnostics)
    else:
        return []
    assert found, "a DefinitionError must carry at least one diagnostic"
    return found


def aws_case(case: Path) -> tuple[bytes, dict[str, Any]]:
    expected = json.loads((case / "expected.json").read_text())
    text = case / "definition.json"
    if not text.exists():
        text = case / "definition.txt"
    return text.read_bytes(), expected


def aws_messages(expected: dict[str, Any]) -> list[tuple[str, str]]:
    """AWS's (message, location) pairs, from either API's recording."""
    if expected.get("diagnostics"):
        return [(d["message"], d.get("location", "")) for d in expected["diagnostics"]]
    if expected.get("message"):
        return [(expected["message"], "")]
    return []


def wording_matches(ours: Diagnostic, expected: dict[str, Any]) -> bool:
    """Whether our diagnostic says what AWS said (and, where AWS gives one, where)."""
    for message, location in aws_messages(expected):
        if location.startswith("/"):
            # Our root pointer is RFC 6901's "", which AWS prints as "/".
            if ours.message == message and (ours.pointer or "/") == location:
                return True
        elif location:  # a syntax error: AWS locates it by line and column
            if ours.message.split("\n")[0] == message.split("\n")[0]:
                return True
        elif str(ours) in message or repr([ours.message]) in message:
            return True
    return False


# --------------------------------------------------------------------------- AWS verdicts


@pytest.mark.parametrize("case", AWS_CASES, ids=lambda p: p.name)
def test_aws_verdict_agrees(case: Path) -> None:
    source, expected = aws_case(case)
    found = verdict(source, expected.get("state_machine_type", "STANDARD"))
    if expected["valid"]:
        assert found == [], f"AWS accepted this definition; we said {found}"
    else:
        assert found, f"AWS rejected this definition ({aws_messages(expected)}); we accepted it"


def test_aws_wording_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    invalid = matched = 0
    for case in AWS_CASES:
        source, expected = aws_case(case)
        if expected["valid"]:
            continue
        invalid += 1
        found = verdict(source, expected.get("state_machine_type", "STANDARD"))
        matched += bool(found) and wording_matches(found[0], expected)
    with capsys.disabled():
        print(f"\nAWS wording: {matched}/{invalid} first diagnostics match AWS's message")
    assert invalid > 0


# --------------------------------------------------------------------------- asl-validator


def asl_validator_agrees(entry: dict[str, Any]) -> bool:
    path = VALIDATION / entry["expected"] / entry["file"]
    return (verdict(path.read_bytes()) == []) == (entry["expected"] == "valid")


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_asl_validator_verdict_agrees_or_is_a_known_failure(entry: dict[str, Any]) -> None:
    agrees = asl_validator_agrees(entry)
    reason = KNOWN["asl_validator"].get(entry["file"])
    if reason is None:
        assert agrees, f"{entry['file']}: expected {entry['expected']} (slug {entry['slug']})"
    else:
        assert not agrees, f"{entry['file']} now agrees; remove it from the known failures"


def test_asl_validator_agreement_is_at_least_90_percent() -> None:
    agreeing = sum(asl_validator_agrees(entry) for entry in MANIFEST)
    assert agreeing / len(MANIFEST) >= MIN_ASL_VALIDATOR_AGREEMENT, f"{agreeing}/{len(MANIFEST)}"


def test_known_failures_name_real_files_and_give_reasons() -> None:
    files = {entry["file"] for entry in MANIFEST}
    for name, reason in KNOWN["asl_validator"].items():
        assert name in files, name
        assert isinstance(reason, str), name
        assert reason.strip(), name
    assert set(KNOWN) == {"asl_validator"}, "AWS cases may not be listed as known failures"


# --------------------------------------------------------------------------- executions


def test_the_corpus_is_present() -> None:
    assert AWS_CASES, f"no AWS validation cases under {VALIDATION}"
    assert MANIFEST, "the asl-validator manifest is empty"
    assert len(DEV_DEFINITIONS) >= 700, f"only {len(DEV_DEFINITIONS)} dev definitions"


@pytest.mark.parametrize("definition", DEV_DEFINITIONS, ids=lambda p: p.parent.name)
def test_definition_aws_ran_parses(definition: Path) -> None:
    parse_definition(definition.read_bytes())
