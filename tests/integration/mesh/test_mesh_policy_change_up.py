"""Under ``dirigent up``, mesh policy changes at run time drop no connection and no request.

A steady load runs through the ``client`` service's outbound listener on a
few keep-alive connections that are never reopened: a connection the mesh
closed would show up as an error on its next request. Meanwhile the policy
changes several times: ``dirigent fault`` delays and clears, and ``dirigent
apply`` with a changed mesh section swaps the mTLS mode (STRICT to
PERMISSIVE and back), the retries, a response header and the authorization.
Each change must show in the responses (a header, a delay) without a single
request failing.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dirigent.runtime.channel import call
from dirigent.runtime.control import Done, Status
from dirigent.runtime.host import AppPaths

#: a service that answers /work after 5 ms and drains on SIGTERM
APP = Path(__file__).parents[1] / "runtime" / "steady_app.py"
DELAY = 0.2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _manifest(mesh: str) -> str:
    services = textwrap.dedent(f"""\
        app: steady
        services:
          web:
            command: [{sys.executable}, {APP}]
            replicas: 2
            probes: {{readiness: {{http: /ready, period: 0.1}}}}
          client:
            command: [{sys.executable}, {APP}]
        mesh:
        """)
    return services + textwrap.indent(textwrap.dedent(mesh), "  ")


FIRST = """\
mtls: STRICT
routes:
  web:
    retries: {attempts: 3, per_try_timeout: 2, retry_on: [5xx, connect-failure, reset]}
    headers: {response: {set: {x-policy: first}}}
"""
#: everything the first says, changed: the mode, the retries, the header, and
#: an authorization policy that names the caller (it allows it)
SECOND = """\
mtls: PERMISSIVE
routes:
  web:
    timeout: 5
    retries: {attempts: 2, per_try_timeout: 1, retry_on: [5xx, reset]}
    headers: {response: {set: {x-policy: second}}}
authorization:
  web:
    default: DENY
    policies:
      - name: client-may-work
        action: ALLOW
        rules: [{from: [client], methods: [GET], paths: [/work]}]
"""
THIRD = FIRST.replace("first", "third")


class App:
    def __init__(self, directory: Path) -> None:
        self.manifest = directory / "dirigent.yaml"
        self.paths = AppPaths.for_manifest(self.manifest)

    def write(self, mesh: str) -> None:
        self.manifest.write_text(_manifest(mesh), encoding="utf-8")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dirigent.cli.main", *args, "-f", str(self.manifest)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def mesh(self) -> dict[str, object]:
        reply = call(self.paths.app_dir, self.paths.socket, Status(), timeout=30)
        assert isinstance(reply, Done)
        planes = reply.body["control_plane"]
        assert isinstance(planes, list)
        found: dict[str, object] = next(p["mesh"] for p in planes if "mesh" in p)
        return found


class SteadyLoad:
    """Requests at a steady rate, each worker on one keep-alive connection for the whole run."""

    def __init__(self, proxy_port: int, rate: float, workers: int = 4) -> None:
        self.port, self.rate = proxy_port, rate
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        #: requests that took at least the injected delay, by the policy that answered
        self.slow: Counter[str] = Counter()
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        interval = len(self._threads) / self.rate
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        connection.connect()
        with self._lock:
            self.connections += 1
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    # Absolute form, as a client configured with HTTP_PROXY sends it.
                    connection.request("GET", "http://web/work")
                    reply = connection.getresponse()
                    reply.read()
                    label = f"{reply.status} {reply.getheader('x-policy')}"
                except (OSError, http.client.HTTPException) as exc:
                    # No reconnect: the worker's connection is gone, and that is the failure.
                    with self._lock:
                        self.outcomes["error"] += 1
                        self.failures.append(repr(exc))
                    return
                took = time.monotonic() - began
                with self._lock:
                    self.outcomes[label] += 1
                    if took >= DELAY:
                        self.slow[label] += 1
                self._stop.wait(max(0.0, interval - took))
        finally:
            connection.close()

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = App(tmp_path)
    made.write(FIRST)
    started = made.cli("up", "--detach", "--api-port", str(_free_port()))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            endpoints = made.mesh()["endpoints"]
            assert isinstance(endpoints, dict)
            if len(endpoints["web"]) == 2:
                break
            time.sleep(0.2)
        yield made
    finally:
        stopped = made.cli("down")
        assert stopped.returncode == 0, stopped.stderr


@pytest.mark.slow
def test_faults_and_applied_mesh_changes_under_steady_load_drop_no_connection_or_request(
    app: App,
) -> None:
    outbound = app.mesh()["outbound"]
    assert isinstance(outbound, dict)
    with SteadyLoad(outbound["client"], rate=60) as load:
        steps = [
            ("fault", "web", "--delay", str(DELAY), "--delay-percent", "50"),
            ("fault", "web", "--clear"),
            ("apply", SECOND),
            ("fault", "web", "--delay", str(DELAY), "--delay-percent", "50"),
            ("fault", "web", "--clear"),
            ("apply", THIRD),
        ]
        time.sleep(1.5)
        for step in steps:
            if step[0] == "apply":
                app.write(step[1])
                done = app.cli("apply")
            else:
                done = app.cli(*step)
            assert done.returncode == 0, (step, done.stdout, done.stderr)
            time.sleep(1.5)
    print(f"outcomes {dict(load.outcomes)}, slow {dict(load.slow)}")
    assert load.failures == [], load.failures[:3]
    assert load.connections == 4
    # Every request was answered, under whichever policy held when it came.
    assert set(load.outcomes) == {"200 first", "200 second", "200 third"}, load.outcomes
    assert sum(load.outcomes.values()) > 300
    # The faults took effect under the first and the second policy alike.
    assert load.slow["200 first"] > 5
    assert load.slow["200 second"] > 5
    assert load.slow["200 third"] == 0
