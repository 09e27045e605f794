"""What ``dirigent server`` hands its HTTP front in the environment."""

from __future__ import annotations

from dirigent.api.keyfile import new_principal
from dirigent.app import front_environment


def test_the_front_gets_the_token_made_up_for_an_admin_defined_without_one() -> None:
    environ = {"DIRIGENT_ACCESS_KEY_ID": "AKIDEXAMPLE", "DIRIGENT_SECRET_ACCESS_KEY": "s3cret"}
    admin = new_principal("env-admin", "admin")
    env = front_environment(environ, [admin])
    assert env["DIRIGENT_TOKEN"] == admin.token
    assert env["DIRIGENT_ACCESS_KEY_ID"] == "AKIDEXAMPLE"


def test_a_token_set_by_the_user_is_passed_on_unchanged() -> None:
    environ = {
        "DIRIGENT_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "DIRIGENT_SECRET_ACCESS_KEY": "s3cret",
        "DIRIGENT_TOKEN": "chosen",
    }
    env = front_environment(environ, [new_principal("env-admin", "admin")])
    assert env["DIRIGENT_TOKEN"] == "chosen"


def test_no_token_is_added_when_the_environment_defines_no_admin() -> None:
    # A principal of that name in the file is not the environment's admin.
    env = front_environment({"HOME": "/home/x"}, [new_principal("env-admin", "viewer")])
    assert "DIRIGENT_TOKEN" not in env
    assert env["HOME"] == "/home/x"


def test_the_front_does_not_import_from_the_working_directory() -> None:
    assert front_environment({}, [])["PYTHONSAFEPATH"] == "1"
