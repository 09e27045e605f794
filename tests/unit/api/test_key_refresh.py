"""Keys added while the server runs: ``keys add`` writes them, the server finds them when used."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dirigent.api.auth import Principal, Principals
from dirigent.api.keyfile import (
    CredentialsError,
    KeyFileRefresh,
    add_principal,
    load_principals,
    read_principals,
    write_principals,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def started(tmp_path: Path, clock: FakeClock) -> Principals:
    principals, _ = load_principals(tmp_path, {})
    return Principals(principals, KeyFileRefresh(tmp_path, principals, clock=clock))


def test_a_key_added_after_start_is_known_on_first_use(tmp_path: Path) -> None:
    principals = started(tmp_path, FakeClock())
    viewer = add_principal(tmp_path, "watcher", "viewer")
    assert principals.secret_for(viewer.access_key_id) == viewer.secret_access_key
    assert principals.by_token(viewer.token) == viewer


def test_a_changing_file_is_read_at_most_once_per_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    principals = started(tmp_path, clock)
    assert principals.by_access_key("DIRUNKNOWN") is None  # reads the file once
    operator = add_principal(tmp_path, "ops", "operator")
    assert principals.by_access_key(operator.access_key_id) is None  # too soon after
    clock.now += 0.25
    assert principals.by_access_key(operator.access_key_id) == operator


def test_an_unchanged_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    principals = started(tmp_path, clock)
    principals.by_access_key("DIRUNKNOWN")
    reads: list[Path] = []
    monkeypatch.setattr(
        "dirigent.api.keyfile.read_principals", lambda data_dir: reads.append(data_dir) or []
    )
    for _ in range(5):
        clock.now += 2.0
        assert principals.by_access_key("DIRUNKNOWN") is None
    assert reads == []


def test_a_broken_file_keeps_the_keys_already_known(tmp_path: Path) -> None:
    clock = FakeClock()
    principals = started(tmp_path, clock)
    admin = read_principals(tmp_path)[0]
    (tmp_path / "credentials.json").write_text("{not json")
    clock.now += 5.0
    assert principals.by_access_key("DIRUNKNOWN") is None
    assert principals.by_access_key(admin.access_key_id) == admin
    # Once repaired, it is read again.
    viewer = add_principal_after_repair(tmp_path, admin)
    clock.now += 5.0
    assert principals.by_access_key(viewer.access_key_id) == viewer


def add_principal_after_repair(data_dir: Path, admin: Principal) -> Principal:
    write_principals(data_dir, [admin])
    return add_principal(data_dir, "watcher", "viewer")


def test_the_environment_admin_survives_a_refresh(tmp_path: Path) -> None:
    add_env = {"DIRIGENT_ACCESS_KEY_ID": "AKIDENV", "DIRIGENT_SECRET_ACCESS_KEY": "s3cret"}
    load_principals(tmp_path, {})  # the file, with its own admin
    loaded, _ = load_principals(tmp_path, add_env)
    principals = Principals(loaded, KeyFileRefresh(tmp_path, loaded, clock=FakeClock()))
    viewer = add_principal(tmp_path, "watcher", "viewer")
    assert principals.by_access_key(viewer.access_key_id) == viewer
    env_admin = principals.by_access_key("AKIDENV")
    assert env_admin is not None
    assert env_admin == loaded[0]  # the same token as at start, not a new random one


def test_keys_add_appends_to_a_file_readable_only_by_its_owner(tmp_path: Path) -> None:
    load_principals(tmp_path, {})
    operator = add_principal(tmp_path, "ops", "operator")
    names = [p.name for p in read_principals(tmp_path)]
    assert names == ["admin", "ops"]
    assert operator.role == "operator"
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_keys_add_refuses_a_name_taken_already(tmp_path: Path) -> None:
    load_principals(tmp_path, {})
    add_principal(tmp_path, "ops", "operator")
    with pytest.raises(CredentialsError, match="exists already"):
        add_principal(tmp_path, "ops", "viewer")
    assert len(read_principals(tmp_path)) == 2


def test_keys_add_refuses_the_name_of_the_admin_from_the_environment(tmp_path: Path) -> None:
    load_principals(tmp_path, {})
    with pytest.raises(CredentialsError, match="choose another name"):
        add_principal(tmp_path, "env-admin", "viewer")
    assert [p.name for p in read_principals(tmp_path)] == ["admin"]


def test_a_server_beside_its_creator_finds_principals_or_fails_without_making_any(
    tmp_path: Path,
) -> None:
    with pytest.raises(CredentialsError, match="holds no principals"):
        load_principals(tmp_path, {}, create=False)
    assert not (tmp_path / "credentials.json").exists()
    made, created = load_principals(tmp_path, {})
    assert created is not None
    assert load_principals(tmp_path, {}, create=False) == (made, None)


def test_keys_add_refuses_a_data_dir_the_server_never_started_in(tmp_path: Path) -> None:
    # A file holding only a viewer would stop the server from creating its admin.
    with pytest.raises(CredentialsError, match="start `dirigent server"):
        add_principal(tmp_path, "watcher", "viewer")
    assert not (tmp_path / "credentials.json").exists()


def test_principals_without_a_refresh_hook_never_change() -> None:
    admin = Principal("a", "admin", "AKID1", "secret", "token-1")
    principals = Principals([admin])
    assert principals.by_access_key("AKID2") is None
    assert len(principals) == 1


def test_a_refreshed_file_without_a_key_forgets_it(tmp_path: Path) -> None:
    clock = FakeClock()
    principals = started(tmp_path, clock)
    viewer = add_principal(tmp_path, "watcher", "viewer")
    assert principals.by_access_key(viewer.access_key_id) == viewer
    document = json.loads((tmp_path / "credentials.json").read_text())
    document["principals"] = document["principals"][:1]
    (tmp_path / "credentials.json").write_text(json.dumps(document))
    clock.now += 1.0
    principals.by_access_key("DIRUNKNOWN")  # any miss reads the changed file
    assert principals.by_access_key(viewer.access_key_id) is None
