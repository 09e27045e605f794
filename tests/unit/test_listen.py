"""Where ``dirigent server`` listens: every address its host names, on one port."""

from __future__ import annotations

import re
import socket

import pytest

from dirigent.app import ListenError, listen, listening_url


def test_an_empty_host_listens_on_every_address_on_one_port() -> None:
    listeners = listen("", 0)
    try:
        families = {sock.family for sock in listeners}
        ports = {sock.getsockname()[1] for sock in listeners}
        assert socket.AF_INET in families
        assert len(ports) == 1
        assert ports != {0}
    finally:
        for sock in listeners:
            sock.close()


def test_the_url_shows_the_real_port_and_brackets_an_ipv6_address() -> None:
    listeners = listen("::1", 0)
    try:
        port = listeners[0].getsockname()[1]
        assert listening_url(listeners) == f"http://[::1]:{port}"
    finally:
        for sock in listeners:
            sock.close()


def test_a_name_that_does_not_resolve_is_a_listen_error_naming_it() -> None:
    with pytest.raises(ListenError, match=re.escape("cannot listen on no-such-host.invalid:8080")):
        listen("no-such-host.invalid", 8080)


def test_a_taken_port_is_a_listen_error_and_leaves_nothing_bound() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match="Address already in use"):
            listen("127.0.0.1", port)
