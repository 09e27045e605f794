"""Bad requests get AWS's documented error and change nothing stored."""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import urllib.error
import urllib.request
from typing import Any
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dirigent.api.auth import Principal
from tests.integration.api.conftest import Server

DEFINITION = json.dumps(
    {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
)


def stored(server: Server) -> tuple[int, int]:
    """(state machines, executions) in the server's SQLite file, read directly."""
    with sqlite3.connect(server.data_dir / "dirigent.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"state_machines", "executions"} <= tables
        machines = db.execute("SELECT count(*) FROM state_machines").fetchone()[0]
        executions = db.execute("SELECT count(*) FROM executions").fetchone()[0]
    return int(machines), int(executions)


def post(
    server: Server,
    target: str,
    body: bytes,
    *,
    principal: Principal | None = None,
    at: dt.datetime | None = None,
    tamper: bool = False,
) -> tuple[int, dict[str, Any]]:
    who = principal or server.admin
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
    )
    if at is None:
        SigV4Auth(
            Credentials(who.access_key_id, who.secret_access_key), "states", "us-east-1"
        ).add_auth(request)
    else:
        with mock.patch("botocore.auth.datetime.datetime") as clock:
            clock.utcnow.return_value = at
            clock.now.return_value = at
            SigV4Auth(
                Credentials(who.access_key_id, who.secret_access_key), "states", "us-east-1"
            ).add_auth(request)
    prepared = request.prepare()
    data = prepared.body or b""
    if tamper:  # same length, other input: the signature no longer matches
        data = data.replace(b'"{}"', b'"[]"')
    sent = urllib.request.Request(server.url + "/", data=data, method="POST")
    for name, value in prepared.headers.items():
        sent.add_header(name, value if isinstance(value, str) else value.decode())
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def machine(server: Server) -> str:
    arn: str = server.client().create_state_machine(
        name="guarded", definition=DEFINITION, roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    return arn


def start_body(machine: str) -> bytes:
    return json.dumps({"stateMachineArn": machine, "input": "{}"}).encode()


def test_malformed_json_is_a_serialization_exception(server: Server, machine: str) -> None:
    before = stored(server)
    status, body = post(server, "AWSStepFunctions.StartExecution", b'{"stateMachineArn": ')
    assert (status, body["__type"]) == (400, "SerializationException")
    assert stored(server) == before


def test_a_member_of_the_wrong_type_is_a_serialization_exception(
    server: Server, machine: str
) -> None:
    before = stored(server)
    body = json.dumps({"stateMachineArn": machine, "input": {"not": "a string"}}).encode()
    status, answer = post(server, "AWSStepFunctions.StartExecution", body)
    assert (status, answer["__type"]) == (400, "SerializationException")
    assert stored(server) == before


def test_an_unknown_action_is_an_unknown_operation(server: Server) -> None:
    status, body = post(server, "AWSStepFunctions.LaunchRocket", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")


def test_an_oversize_body_is_refused_before_it_is_read(server: Server, machine: str) -> None:
    before = stored(server)
    host, port = server.url.removeprefix("http://").split(":")
    # Only the head is sent: the server must answer from Content-Length alone.
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSStepFunctions.StartExecution\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 5242880\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["__type"] == "RequestEntityTooLargeException"
    assert stored(server) == before


def test_an_oversize_execution_input_is_invalid_input(server: Server, machine: str) -> None:
    before = stored(server)
    with pytest.raises(ClientError) as caught:
        server.client().start_execution(stateMachineArn=machine, input=json.dumps("x" * 300_000))
    assert caught.value.response["Error"]["Code"] == "InvalidExecutionInput"
    assert stored(server) == before


def test_an_expired_signature_is_an_invalid_signature(server: Server, machine: str) -> None:
    before = stored(server)
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=20)
    status, body = post(server, "AWSStepFunctions.StartExecution", start_body(machine), at=old)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired")
    assert stored(server) == before


def test_a_forged_signature_is_an_invalid_signature(server: Server, machine: str) -> None:
    before = stored(server)
    status, body = post(server, "AWSStepFunctions.StartExecution", start_body(machine), tamper=True)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert stored(server) == before


def test_an_unknown_key_is_an_unrecognized_client(server: Server, machine: str) -> None:
    before = stored(server)
    stranger = Principal("x", "admin", "AKIDUNKNOWN", "secret", "token")
    status, body = post(
        server, "AWSStepFunctions.StartExecution", start_body(machine), principal=stranger
    )
    assert (status, body["__type"]) == (400, "UnrecognizedClientException")
    assert stored(server) == before


def test_an_unsigned_request_learns_nothing(server: Server) -> None:
    request = urllib.request.Request(
        server.url + "/",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Target": "AWSStepFunctions.LaunchRocket"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as response:
        assert response.code == 403
        assert json.loads(response.read())["__type"] == "MissingAuthenticationTokenException"


def test_a_viewer_cannot_start_an_execution(server: Server, machine: str) -> None:
    before = stored(server)
    with pytest.raises(ClientError) as caught:
        server.client(server.viewer).start_execution(stateMachineArn=machine, input="{}")
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert stored(server) == before


def test_a_viewer_can_read_and_an_operator_cannot_deploy(server: Server, machine: str) -> None:
    assert server.client(server.viewer).describe_state_machine(stateMachineArn=machine)
    with pytest.raises(ClientError) as caught:
        server.client(server.operator).delete_state_machine(stateMachineArn=machine)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert server.client().describe_state_machine(stateMachineArn=machine)


def test_healthz_answers_without_credentials(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
        assert response.status == 200
