"""Roles, principals and the credentials file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dirigent.api.auth import Principal, Principals, role_for
from dirigent.api.keyfile import (
    CredentialsError,
    load_principals,
    new_principal,
    write_principals,
)


def test_a_viewer_may_read_but_not_start_executions() -> None:
    viewer = new_principal("v", "viewer")
    assert viewer.may(role_for("DescribeExecution"))
    assert not viewer.may(role_for("StartExecution"))


def test_an_operator_runs_executions_but_does_not_change_the_catalog() -> None:
    operator = new_principal("o", "operator")
    assert operator.may(role_for("StartExecution"))
    assert operator.may(role_for("SendTaskSuccess"))
    assert not operator.may(role_for("CreateStateMachine"))
    assert not operator.may(role_for("DeleteStateMachine"))


def test_an_action_nobody_listed_needs_admin() -> None:
    assert role_for("SomeFutureAction") == "admin"


def test_principals_are_found_by_key_and_by_token_only() -> None:
    admin = Principal("a", "admin", "AKID1", "secret", "token-1")
    principals = Principals([admin])
    assert principals.by_access_key("AKID1") is admin
    assert principals.secret_for("AKID2") is None
    assert principals.by_token("token-1") is admin
    assert principals.by_token("token-2") is None


def test_first_start_writes_an_admin_readable_only_by_its_owner(tmp_path: Path) -> None:
    principals, created = load_principals(tmp_path / "data", {})
    assert created == tmp_path / "data" / "credentials.json"
    assert [p.role for p in principals] == ["admin"]
    for name in ("credentials.json", "aws-credentials"):
        mode = stat.S_IMODE((tmp_path / "data" / name).stat().st_mode)
        assert mode == 0o600
    assert principals[0].secret_access_key in (tmp_path / "data" / "aws-credentials").read_text()


def test_a_second_start_reads_the_same_principals_and_writes_nothing(tmp_path: Path) -> None:
    first, _ = load_principals(tmp_path, {})
    second, created = load_principals(tmp_path, {})
    assert created is None
    assert second == first


def test_the_environment_defines_the_admin_and_no_file_is_written(tmp_path: Path) -> None:
    environ = {
        "DIRIGENT_ACCESS_KEY_ID": "AKIDENV",
        "DIRIGENT_SECRET_ACCESS_KEY": "s3cret",
        "DIRIGENT_TOKEN": "tok",
    }
    principals, created = load_principals(tmp_path, environ)
    assert created is None
    assert not (tmp_path / "credentials.json").exists()
    assert (principals[0].access_key_id, principals[0].role, principals[0].token) == (
        "AKIDENV",
        "admin",
        "tok",
    )


def test_half_an_environment_key_pair_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError):
        load_principals(tmp_path, {"DIRIGENT_ACCESS_KEY_ID": "AKID"})


def test_a_credentials_file_with_an_unknown_role_is_refused(tmp_path: Path) -> None:
    write_principals(tmp_path, [new_principal("a", "admin")])
    document = json.loads((tmp_path / "credentials.json").read_text())
    document["principals"][0]["role"] = "emperor"
    (tmp_path / "credentials.json").write_text(json.dumps(document))
    with pytest.raises(CredentialsError, match="unknown role"):
        load_principals(tmp_path, {})
