"""A real ``dirigent server`` subprocess on a free port, with admin, operator and viewer keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from dirigent.api.auth import Principal
from dirigent.api.keyfile import new_principal, write_principals

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    admin: Principal
    operator: Principal
    viewer: Principal

    def client(self, principal: Principal | None = None) -> Any:
        who = principal or self.admin
        return boto3.client(
            "stepfunctions",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=who.access_key_id,
            aws_secret_access_key=who.secret_access_key,
            # StartSyncExecution carries the host prefix "sync-"; a local
            # endpoint has no such host, so the prefix is turned off.
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )


def server_command(port: int, data_dir: Path, *extra: str) -> list[str]:
    """``dirigent server`` on ``port`` with the test functions registered."""
    return [
        sys.executable,
        "-m",
        "dirigent.cli.main",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--function",
        "Echo=tests.integration.api.functions:echo",
        "--function",
        "Nothing=tests.integration.api.functions:nothing",
        *extra,
    ]


def server_environment() -> dict[str, str]:
    """This environment without the variables that would define the server's admin."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DIRIGENT_")}


def start_server(
    data_dir: Path, *extra: str, host: str = "127.0.0.1"
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        server_command(port, data_dir, "--host", host, *extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=server_environment(),
    )
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{stop_server(process)}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    raise RuntimeError("the server did not become healthy in 20 s")


def stop_server(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is None:
        return ""
    with process.stdout:
        return process.stdout.read().decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("server")
    admin, operator, viewer = (
        new_principal("admin", "admin"),
        new_principal("ops", "operator"),
        new_principal("watcher", "viewer"),
    )
    write_principals(data_dir, [admin, operator, viewer])
    process, url = start_server(data_dir)
    try:
        yield Server(url, data_dir, process, admin, operator, viewer)
    finally:
        stop_server(process)
