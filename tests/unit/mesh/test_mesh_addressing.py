"""Replica environment: HTTP_PROXY at the caller's own outbound listener, a URL per service."""

from __future__ import annotations

from dirigent.mesh.addressing import replica_environment, url_variable


def test_every_service_gets_a_url_variable_by_its_name() -> None:
    env = replica_environment(["payments", "order-history"], "127.0.0.1", 15001)
    assert env["PAYMENTS_URL"] == "http://payments"
    assert env["ORDER_HISTORY_URL"] == "http://order-history"


def test_both_spellings_of_the_proxy_variable_point_at_the_outbound_listener() -> None:
    env = replica_environment([], "127.0.0.1", 15001)
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://127.0.0.1:15001"
    assert "127.0.0.1" in env["NO_PROXY"].split(",")


def test_url_variables_are_valid_shell_names() -> None:
    assert url_variable("a.b-c") == "A_B_C_URL"
