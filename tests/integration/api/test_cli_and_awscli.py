"""The AWS CLI and Dirigent's own CLI against a running server, as separate processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.api.conftest import REPO, Server, start_server, stop_server

DEFINITION = {"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "End": True}}}
AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


def aws(server: Server, *args: str) -> dict[str, object]:
    assert AWS is not None
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": server.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": server.admin.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [AWS, "--endpoint-url", server.url, "--output", "json", "stepfunctions", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout or "{}")
    return result


@pytest.mark.skipif(AWS is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_starts_and_lists_executions(server: Server) -> None:
    arn = server.client().create_state_machine(
        name="awscli", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    started = aws(server, "start-execution", "--state-machine-arn", arn, "--name", "via-cli")
    assert str(started["executionArn"]).endswith(":awscli:via-cli")
    listed = aws(server, "list-executions", "--state-machine-arn", arn)
    assert [e["name"] for e in listed["executions"]] == ["via-cli"]  # type: ignore[attr-defined]


def dirigent(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dirigent.cli.main",
            *args,
            "--server",
            server.url,
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("DIRIGENT_")},
    )


def test_the_cli_deploys_starts_describes_and_lists(server: Server, tmp_path: Path) -> None:
    file = tmp_path / "greeter.asl.json"
    file.write_text(json.dumps(DEFINITION))
    deployed = dirigent(server, "workflows", "deploy", str(file))
    assert deployed.returncode == 0, deployed.stderr
    assert "greeter" in deployed.stdout
    assert "created" in deployed.stdout
    again = dirigent(server, "workflows", "deploy", str(file), "--json")
    assert json.loads(again.stdout)[0]["action"] == "updated"

    started = dirigent(server, "executions", "start", "greeter", "--input", '{"a": 1}', "--json")
    assert started.returncode == 0, started.stderr
    arn = json.loads(started.stdout)["executionArn"]
    described = json.loads(dirigent(server, "executions", "describe", arn, "--json").stdout)
    assert described["input"] == {"a": 1}
    listed = dirigent(server, "executions", "list", "--state-machine", "greeter")
    assert "NAME" in listed.stdout.splitlines()[0]
    history = dirigent(server, "executions", "history", arn)
    assert "ExecutionStarted" in history.stdout


def test_the_cli_reports_a_refusal_with_exit_1(server: Server) -> None:
    missing = dirigent(server, "executions", "describe", "arn:aws:states:us-east-1:1:execution:x:y")
    assert missing.returncode == 1
    assert "ExecutionDoesNotExist" in missing.stderr


def test_the_rest_api_streams_history_as_server_sent_events(server: Server) -> None:
    sfn = server.client()
    arn = sfn.create_state_machine(
        name="streamed", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    request = urllib.request.Request(
        f"{server.url}/api/v1/executions/{execution}/events",
        headers={"Authorization": f"Bearer {server.viewer.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.read().decode()
    kinds = [
        line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event:")
    ]
    assert kinds[-1] == "end"
    assert '"ExecutionStarted"' in text
    assert '"ExecutionSucceeded"' in text


def test_first_start_creates_an_admin_and_says_where(tmp_path: Path) -> None:
    process, url = start_server(tmp_path / "fresh")
    output = stop_server(process)
    assert f"created admin credentials in {tmp_path / 'fresh' / 'credentials.json'}" in output
    assert url.startswith("http://127.0.0.1:")
    assert oct((tmp_path / "fresh" / "credentials.json").stat().st_mode & 0o777) == "0o600"
