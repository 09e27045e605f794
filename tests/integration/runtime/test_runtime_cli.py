"""The ``dirigent`` CLI runs a real app: up, ps, scale, restart, apply, logs, down, and crashes.

Each test runs a real ``dirigent up`` subprocess on a temporary app directory
whose service is a tiny stdlib HTTP server. Bounds are generous (tens of
seconds) so a loaded machine does not flake them; latencies belong in bench/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_app import App, alive, environ_of, wait_for, web

FIELDS = {
    "service",
    "replica",
    "pid",
    "port",
    "state",
    "ready",
    "restarts",
    "uptime_s",
    "cpu",
    "rss",
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = App(tmp_path)
    try:
        yield application
    finally:
        application.cleanup()


def test_up_detach_returns_once_replicas_are_ready_and_ps_lists_them(app: App) -> None:
    app.write(web(2))
    app.ok("up", "--detach")
    rows = app.ps()
    assert [r["replica"] for r in rows] == ["web-0", "web-1"]
    for row in rows:
        assert set(row) == FIELDS
        assert row["state"] == "running"
        assert row["ready"] is True
        assert row["restarts"] == 0
        assert alive(row["pid"])
        with urllib.request.urlopen(f"http://127.0.0.1:{row['port']}/ready", timeout=5) as reply:
            assert reply.status == 200
    table = app.ok("ps")
    assert table.splitlines()[0].split()[:4] == ["REPLICA", "PID", "PORT", "STATE"]
    assert "web-1" in table


def test_scale_goes_from_one_to_three_and_back_to_one(app: App) -> None:
    app.write(web(1))
    app.ok("up", "--detach")
    first = app.ps()[0]
    app.ok("scale", "web", "3")
    wait_for(lambda: len(app.ready("web")) == 3, "three ready replicas")
    app.ok("scale", "web", "1")
    wait_for(lambda: [r["replica"] for r in app.ps()] == ["web-0"], "one replica left")
    assert app.ps()[0]["pid"] == first["pid"]  # scaling down kept the oldest slot
    refused = app.cli("scale", "nosuch", "2")
    assert refused.returncode == 1
    assert "no service 'nosuch'" in refused.stderr


def test_restart_rolls_without_fewer_ready_replicas_than_max_unavailable_allows(
    app: App,
) -> None:
    app.write(web(3, extra="rollout: {max_surge: 1, max_unavailable: 1}"))
    app.ok("up", "--detach")
    before = {r["pid"] for r in app.ps()}
    app.ok("restart", "web")
    fewest_ready = 3

    def rolled() -> bool:
        nonlocal fewest_ready
        rows = app.ps()
        fewest_ready = min(fewest_ready, sum(1 for r in rows if r["ready"]))
        live = [r for r in rows if r["pid"] is not None]
        return len(live) == 3 and all(r["ready"] and r["pid"] not in before for r in live)

    wait_for(rolled, "every replica replaced")
    assert fewest_ready >= 3 - 1
    assert not any(alive(pid) for pid in before)


def test_apply_with_a_changed_env_var_rolls_the_service(app: App) -> None:
    app.write(web(2, greeting="hello"))
    app.ok("up", "--detach")
    before = {r["pid"] for r in app.ps()}
    assert "nothing changed" in app.ok("apply")
    app.write(web(2, greeting="bonjour"))
    assert "rolled web" in app.ok("apply")

    def greeted() -> bool:
        rows = app.ready("web")
        return len(rows) == 2 and all(
            environ_of(r["pid"]).get("GREETING") == "bonjour" for r in rows
        )

    wait_for(greeted, "both replicas to run with the new environment")
    assert not {r["pid"] for r in app.ps()} & before


def test_apply_of_an_invalid_manifest_changes_nothing(app: App) -> None:
    app.write(web(1))
    app.ok("up", "--detach")
    pid = app.ps()[0]["pid"]
    app.manifest.write_text("app: clitest\nservices:\n  web:\n    replicas: -1\n")
    refused = app.cli("apply")
    assert refused.returncode == 1
    assert "nothing applied" in refused.stderr
    assert "services.web" in refused.stderr
    assert app.ps()[0]["pid"] == pid


def test_logs_follow_prints_lines_of_replicas_as_they_appear(app: App) -> None:
    app.write(web(1))
    app.ok("up", "--detach")
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dirigent.cli.main",
            "logs",
            "web",
            "-f",
            "--file",
            str(app.manifest),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert "as web-0" in follower.stdout.readline()
        app.ok("scale", "web", "2")
        line = follower.stdout.readline()
        assert line.startswith("web-1 | listening on")
    finally:
        follower.kill()
        follower.communicate()  # reaps it and closes its pipe
    assert "web-0 | listening on" in app.ok("logs", "web", "--since", "1h")
    assert app.ok("logs", "web", "--since", "2999-01-01T00:00:00") == ""


def test_down_stops_every_process_and_commands_then_say_nothing_runs(app: App) -> None:
    app.write(web(2))
    app.ok("up", "--detach")
    up = app.up_pid()
    assert up is not None
    replicas = {r["pid"] for r in app.ps()}
    app.ok("down")
    assert not alive(up)
    assert not any(alive(pid) for pid in replicas)
    assert not app.marked()
    after = app.cli("ps")
    assert after.returncode == 1
    assert after.stderr.strip() == (
        f"dirigent: no Dirigent is running for {app.dir}; start it with dirigent up"
    )


def test_sigterm_to_a_foreground_up_stops_everything_gracefully(app: App) -> None:
    app.write(web(2))
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dirigent.cli.main",
            "up",
            "-f",
            str(app.manifest),
            "--no-control-plane",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: app.cli("ps").returncode == 0 and len(app.ready("web")) == 2, "up")
        second = app.cli("up", "--detach")
        assert second.returncode == 1
        assert "already running" in second.stderr
        up.send_signal(signal.SIGTERM)
        _, output = up.communicate(timeout=60)
        assert up.returncode == 0
    finally:
        if up.poll() is None:
            up.kill()
        up.communicate()
    assert "clitest down" in output
    assert not app.marked()


STUBBORN = f"""\
stubborn:
  command: [{sys.executable}, -c, "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.fork(); time.sleep(600)"]
  stop: {{grace_period: 1}}
"""  # noqa: E501  (a command line reads best unbroken)


def test_after_kill_9_of_up_a_new_up_leaves_no_duplicate_and_no_leaked_process(
    app: App,
) -> None:
    app.write(web(2) + STUBBORN)
    app.ok("up", "--detach")
    first_up = app.up_pid()
    assert first_up is not None
    old = app.marked()
    assert len(old) == 4  # two web replicas, the stubborn replica and the child it forked

    os.kill(first_up, signal.SIGKILL)
    wait_for(lambda: not alive(first_up), "the control plane to die")
    # The web replicas die with their parent; the stubborn ones ignore it and wait for the sweep.
    app.ok("up", "--detach")

    assert not any(alive(pid) for pid in old)
    by_replica: dict[str, int] = {}
    for pid in app.marked():
        name = environ_of(pid).get("DIRIGENT_REPLICA", "?")
        by_replica[name] = by_replica.get(name, 0) + 1
    assert by_replica == {"web-0": 1, "web-1": 1, "stubborn-0": 2}
    assert {r["replica"] for r in app.ps()} == {"web-0", "web-1", "stubborn-0"}


def test_a_crash_looping_service_shows_as_such_in_ps(app: App) -> None:
    app.write(
        f"""\
        broken:
          command: [{sys.executable}, -c, "import sys; sys.exit(3)"]
          restart: {{backoff: {{initial: 0.3, cap: 0.6, jitter: 0}}}}
        """
    )
    app.cli("up", "--detach")  # whether it saw the first crash yet depends on the machine's load
    wait_for(lambda: any(r["state"] == "crash-loop" for r in app.ps()), "a crash-loop row")
    # The state alternates between backoff (crash-loop) and a fresh start, so the
    # table is read until it is caught in backoff too.
    wait_for(lambda: "crash-loop" in app.ok("ps"), "the table to show crash-loop")
    wait_for(lambda: app.ps()[0]["restarts"] >= 3, "restarts to be counted")


@pytest.mark.skipif(
    Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="this machine has cgroup v2"
)
def test_resource_limits_without_cgroup_v2_warn_once_per_service(app: App) -> None:
    app.write(web(2, extra="resources: {memory: 64Mi, cpu: 0.5}"))
    started = app.cli("up", "--detach")
    assert started.returncode == 0
    warnings = [line for line in started.stderr.splitlines() if "not applied" in line]
    assert warnings == [
        "dirigent: warning: web: resource limits not applied (memory 67108864 bytes, "
        "cpu 0.5 cores): no cgroup v2 at /sys/fs/cgroup (this machine has cgroup v1)"
    ]
