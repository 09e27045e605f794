"""`dirigent server` as two processes: the engine's, and the HTTP front it starts and keeps."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from dirigent.api.keyfile import new_principal, write_principals
from tests.integration.api.conftest import (
    REPO,
    Server,
    free_port,
    server_command,
    server_environment,
    start_server,
    stop_server,
)


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        found.update(int(child) for child in text)
    return found


def front_of(server_pid: int) -> int:
    """The server's one live child (a killed front may linger unreaped a moment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = {pid for pid in children(server_pid) if alive(pid)}
        if len(found) == 1:
            return found.pop()
        time.sleep(0.05)
    raise AssertionError(f"the server has children {children(server_pid)}, not one front")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    admin = new_principal("admin", "admin")
    write_principals(tmp_path, [admin])
    process, url = start_server(tmp_path)
    yield Server(url, tmp_path, process, admin, admin, admin)
    if process.stdout is not None and not process.stdout.closed:
        stop_server(process)


def test_a_killed_front_is_started_again_and_calls_go_on(fresh: Server) -> None:
    try:
        sfn = fresh.client()
        assert sfn.list_state_machines()["stateMachines"] == []
        first = front_of(fresh.process.pid)
        os.kill(first, signal.SIGKILL)
        assert wait_gone(first, 5)
        # Made while no front runs: the connection waits in the listening
        # socket's backlog, which the engine's process still holds.
        created = sfn.create_activity(name="after-the-crash")
        assert created["activityArn"].endswith(":activity:after-the-crash")
        second = front_of(fresh.process.pid)
        assert second != first
        assert fresh.process.poll() is None
    finally:
        output = stop_server(fresh.process)
    assert "the API front exited with code -9; starting it again" in output


def test_the_front_exits_when_the_engines_process_is_killed(fresh: Server) -> None:
    front = front_of(fresh.process.pid)
    fresh.process.kill()
    fresh.process.wait()
    try:
        assert wait_gone(front, 10), "the front outlived the engine's process"
    finally:
        stop_server(fresh.process)
    # Nothing holds the port any more.
    port = int(fresh.url.rsplit(":", 1)[1])
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_sigterm_stops_the_front_then_the_engine(fresh: Server) -> None:
    front = front_of(fresh.process.pid)
    fresh.process.send_signal(signal.SIGTERM)
    assert fresh.process.wait(timeout=15) == 0
    assert wait_gone(front, 1)
    assert "Traceback" not in stop_server(fresh.process)


def test_a_port_in_use_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        ran = subprocess.run(
            server_command(port, tmp_path / "data"),
            cwd=REPO,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            env=server_environment(),
        )
    assert ran.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in ran.stderr
    assert not (tmp_path / "data").exists()


def test_a_stop_ends_live_streams_and_activity_polls_at_once_and_refuses_newcomers(
    fresh: Server,
) -> None:
    sfn = fresh.client()
    activity = sfn.create_activity(name="polled")["activityArn"]
    host, port = fresh.url.removeprefix("http://").split(":")
    stream = http.client.HTTPConnection(host, int(port), timeout=30)
    stream.request(
        "GET", "/api/v1/events", headers={"Authorization": f"Bearer {fresh.admin.token}"}
    )
    assert stream.getresponse().status == 200
    polled: dict[str, Any] = {}
    poller = threading.Thread(
        target=lambda: polled.update(answer=fresh.client().get_activity_task(activityArn=activity))
    )
    poller.start()
    time.sleep(0.5)  # the poll is in flight
    began = time.monotonic()
    fresh.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()
    assert fresh.process.wait(timeout=15) == 0
    took = time.monotonic() - began
    poller.join(timeout=10)
    stream.close()
    # Not the 8 s a stop allows requests in flight, nor the poll's 60 s.
    assert took < 4, f"the stop took {took:.1f} s"
    assert "taskToken" not in polled["answer"]
    assert polled["answer"]["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_server_on_an_ipv6_address_answers_there(tmp_path: Path) -> None:
    admin = new_principal("admin", "admin")
    write_principals(tmp_path, [admin])
    process, url = start_server(tmp_path, host="::1")
    try:
        assert url.startswith("http://[::1]:")
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        stop_server(process)


def test_a_poll_whose_client_timed_out_does_not_take_the_next_task(fresh: Server) -> None:
    impatient = boto3.client(
        "stepfunctions",
        endpoint_url=fresh.url,
        region_name="us-east-1",
        aws_access_key_id=fresh.admin.access_key_id,
        aws_secret_access_key=fresh.admin.secret_access_key,
        config=Config(read_timeout=1, retries={"max_attempts": 1}),
    )
    sfn = fresh.client()
    activity = sfn.create_activity(name="impatient")["activityArn"]
    machine = sfn.create_state_machine(
        name="worked",
        definition=json.dumps(
            {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": activity, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    with pytest.raises(ReadTimeoutError):
        impatient.get_activity_task(activityArn=activity, workerName="gone")
    time.sleep(1.0)  # the server sees the disconnect and ends the poll
    sfn.start_execution(stateMachineArn=machine)
    task = sfn.get_activity_task(activityArn=activity, workerName="here")
    assert "taskToken" in task


def test_a_stop_lets_a_synchronous_execution_finish(fresh: Server) -> None:
    sfn = fresh.client()
    machine = sfn.create_state_machine(
        name="quick",
        type="EXPRESS",
        definition=json.dumps(
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 2, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    answer: dict[str, Any] = {}
    caller = threading.Thread(
        target=lambda: answer.update(sfn.start_sync_execution(stateMachineArn=machine))
    )
    caller.start()
    time.sleep(0.7)
    fresh.process.send_signal(signal.SIGTERM)
    caller.join(timeout=15)
    assert answer["status"] == "SUCCEEDED"
    assert fresh.process.wait(timeout=15) == 0


def test_a_front_killed_again_and_again_after_serving_never_stops_the_server(
    fresh: Server,
) -> None:
    sfn = fresh.client()
    for _ in range(6):
        front = front_of(fresh.process.pid)
        assert sfn.list_activities()["activities"] == []  # it serves (and said it was ready)
        os.kill(front, signal.SIGKILL)
        assert wait_gone(front, 5)
    assert sfn.list_activities()["activities"] == []
    assert fresh.process.poll() is None
