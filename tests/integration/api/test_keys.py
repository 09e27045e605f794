"""``dirigent keys add`` against a running server: the new key works at once, with its role."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dirigent.api.auth import Principal
from tests.integration.api.conftest import REPO, Server

DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def dirigent_keys(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dirigent.cli.main",
            "keys",
            *args,
            "--data-dir",
            str(server.data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def keys_add(server: Server, name: str, role: str) -> Principal:
    done = dirigent_keys(server, "add", name, "--role", role, "--json")
    assert done.returncode == 0, done.stderr
    added: dict[str, str] = json.loads(done.stdout)
    return Principal(
        added["name"],
        role,  # type: ignore[arg-type]
        added["accessKeyId"],
        added["secretAccessKey"],
        added["token"],
    )


def rest(server: Server, path: str, token: str, method: str = "GET", body: Any = None) -> int:
    request = urllib.request.Request(
        server.url + "/api/v1" + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_viewer_key_added_while_the_server_runs_reads_but_cannot_start(server: Server) -> None:
    machine = server.client().create_state_machine(
        name="keys-viewer", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    viewer = keys_add(server, "late-viewer", "viewer")
    client = server.client(viewer)
    assert client.describe_state_machine(stateMachineArn=machine)["name"] == "keys-viewer"
    with pytest.raises(ClientError) as denied:
        client.start_execution(stateMachineArn=machine)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert server.client().list_executions(stateMachineArn=machine)["executions"] == []
    assert rest(server, "/state-machines", viewer.token) == 200


def test_an_operator_key_added_while_the_server_runs_starts_executions(server: Server) -> None:
    machine = server.client().create_state_machine(
        name="keys-operator", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    # Two keys in quick succession: the server reads a changing file at most
    # four times a second, so the second may need a moment to be known.
    keys_add(server, "first-operator", "operator")
    operator = keys_add(server, "late-operator", "operator")
    client = server.client(operator)
    deadline = time.monotonic() + 5
    while True:
        try:
            started = client.start_execution(stateMachineArn=machine, name="by-operator")
            break
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code != "UnrecognizedClientException" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert started["executionArn"].endswith(":keys-operator:by-operator")
    path = "/state-machines/keys-operator/executions"
    assert rest(server, path, operator.token, "POST", {"name": "rest-op"}) in (200, 201)


def test_an_unknown_key_is_still_unrecognized_after_the_file_is_read(server: Server) -> None:
    stranger = Principal("x", "admin", "DIRNOTAKEY0000000000", "not-a-secret", "not-a-token")
    with pytest.raises(ClientError) as refused:
        server.client(stranger).list_state_machines()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert rest(server, "/state-machines", stranger.token) == 401


def test_keys_add_refuses_a_taken_name_and_leaves_the_file_alone(server: Server) -> None:
    before = (server.data_dir / "credentials.json").read_text()
    done = dirigent_keys(server, "add", "admin", "--role", "viewer")
    assert done.returncode == 1
    assert "exists already" in done.stderr
    assert (server.data_dir / "credentials.json").read_text() == before
