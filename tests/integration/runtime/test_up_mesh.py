"""Under ``dirigent up`` the mesh carries the app's traffic: replicas and the engine alike."""

from __future__ import annotations

import json
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from tests.integration.apps import dirigent, free_port

from dirigent.sdk import ExecutionFailed, StepFunctions

APPS = Path(__file__).with_name("mesh_apps.py")


def _write_app(tmp_path: Path) -> None:
    call = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": "http://back/hello", "Method": "GET"},
                "ResultSelector": {"body.$": "$.ResponseBody"},
                "End": True,
            }
        },
    }
    front = {
        **call,
        "States": {
            "Call": {
                **call["States"]["Call"],
                "Parameters": {"ApiEndpoint": "http://front/call", "Method": "GET"},
            }
        },
    }
    (tmp_path / "back.asl.json").write_text(json.dumps(call), encoding="utf-8")
    (tmp_path / "front.asl.json").write_text(json.dumps(front), encoding="utf-8")
    (tmp_path / "dirigent.yaml").write_text(
        textwrap.dedent(f"""\
        app: pair
        services:
          back:
            command: [{sys.executable}, {APPS}, back]
            probes: {{readiness: {{http: /healthz, period: 0.2}}}}
          front:
            command: [{sys.executable}, {APPS}, front]
            probes: {{readiness: {{http: /healthz, period: 0.2}}}}
        workflows: [back.asl.json, front.asl.json]
        mesh:
          mtls: STRICT
          authorization:
            front:
              policies:
                - name: no-engine-on-front
                  action: DENY
                  rules: [{{from: [engine]}}]
        """),
        encoding="utf-8",
    )


def test_services_and_the_engine_reach_each_other_by_name_through_mtls(tmp_path: Path) -> None:
    _write_app(tmp_path)
    port = free_port()
    started = dirigent(tmp_path, "up", "--detach", "--api-port", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        client = StepFunctions.from_environment(
            f"http://127.0.0.1:{port}", data_dir=tmp_path / ".dirigent"
        )
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:"
        # The engine calls back with its own identity, over mutual TLS.
        body = client.run(machine + "back", timeout=30)["body"]
        assert body.startswith("hello ")
        assert "spiffe://pair/service/engine" in body
        # A DENY policy keeps the engine off front: refused, and the policy is named.
        with pytest.raises(ExecutionFailed) as refused:
            client.run(machine + "front", timeout=30)
        assert refused.value.error == "States.Http.StatusCode.403"
        assert "no-engine-on-front" in (refused.value.cause or "")
        # A replica reaches another by name with an ordinary HTTP client (HTTP_PROXY).
        rows = json.loads(dirigent(tmp_path, "ps", "--json").stdout)
        front_port = next(r["port"] for r in rows if r["service"] == "front")
        with urllib.request.urlopen(f"http://127.0.0.1:{front_port}/call", timeout=10) as reply:
            said = reply.read().decode()
        assert said.startswith("front got: hello")
        assert "spiffe://pair/service/front" in said
        # A fault injected at run time answers for the service, then is cleared.
        injected = dirigent(tmp_path, "fault", "back", "--abort", "503")
        assert injected.returncode == 0, injected.stderr
        with pytest.raises(ExecutionFailed) as aborted:
            client.run(machine + "back", timeout=30)
        assert aborted.value.error == "States.Http.StatusCode.503"
        assert dirigent(tmp_path, "fault", "back", "--clear").returncode == 0
        assert "spiffe://pair/service/engine" in client.run(machine + "back", timeout=30)["body"]
        unknown = dirigent(tmp_path, "fault", "nowhere", "--delay", "1")
        assert unknown.returncode != 0
        assert "nowhere" in unknown.stderr
    finally:
        stopped = dirigent(tmp_path, "down")
    assert stopped.returncode == 0, stopped.stderr
