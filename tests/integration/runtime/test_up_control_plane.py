"""``dirigent up`` runs the engine and its APIs beside the services, from the manifest."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from tests.integration.apps import dirigent, free_port

from dirigent.sdk import StepFunctions

REPLICA = Path(__file__).with_name("replica_app.py")


def test_up_deploys_the_workflows_and_serves_the_functions_it_declares(tmp_path: Path) -> None:
    (tmp_path / "shoutfns.py").write_text(
        "def shout(event):\n    return {'said': event['word'].upper()}\n", encoding="utf-8"
    )
    (tmp_path / "greet.asl.json").write_text(
        json.dumps(
            {
                "StartAt": "Shout",
                "States": {
                    "Shout": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:shout",
                        "End": True,
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    ping = {
        "StartAt": "Ping",
        "States": {
            "Ping": {
                "Type": "Task",
                "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": "http://web/ready", "Method": "GET"},
                "ResultSelector": {"status.$": "$.StatusCode", "body.$": "$.ResponseBody"},
                "End": True,
            }
        },
    }
    (tmp_path / "ping.asl.json").write_text(json.dumps(ping), encoding="utf-8")
    (tmp_path / "dirigent.yaml").write_text(
        textwrap.dedent(f"""\
        app: greeter
        services:
          web:
            command: [{sys.executable}, {REPLICA}]
            probes: {{readiness: {{http: /ready, period: 0.2}}}}
        workflows: [greet.asl.json, ping.asl.json]
        functions:
          shout: shoutfns:shout
        """),
        encoding="utf-8",
    )
    port = free_port()
    started = dirigent(tmp_path, "up", "--detach", "--api-port", str(port))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        client = StepFunctions.from_environment(
            f"http://127.0.0.1:{port}", data_dir=tmp_path / ".dirigent"
        )
        machine = "arn:aws:states:us-east-1:123456789012:stateMachine:greet"
        assert client.run(machine, {"word": "hello"}, timeout=30) == {"said": "HELLO"}
        # An HTTP task names the service; the control plane finds a ready replica.
        ping = machine.replace(":greet", ":ping")
        assert client.run(ping, timeout=30) == {"status": 200, "body": "ok"}
        rows = json.loads(dirigent(tmp_path, "ps", "--json").stdout)
        assert [(r["service"], r["ready"]) for r in rows] == [("web", True)]
    finally:
        stopped = dirigent(tmp_path, "down")
    assert stopped.returncode == 0, stopped.stderr
    log = (tmp_path / ".dirigent" / "up.log").read_text(encoding="utf-8")
    assert "2 workflow(s) deployed" in log


def test_up_refuses_to_start_with_an_invalid_workflow_and_says_which(tmp_path: Path) -> None:
    (tmp_path / "broken.asl.json").write_text('{"StartAt": "Nowhere", "States": {}}', "utf-8")
    (tmp_path / "dirigent.yaml").write_text(
        textwrap.dedent(f"""\
        app: broken
        services:
          web:
            command: [{sys.executable}, {REPLICA}]
        workflows: [broken.asl.json]
        """),
        encoding="utf-8",
    )
    started = dirigent(
        tmp_path, "up", "--detach", "--api-port", str(free_port()), "--timeout", "30"
    )
    dirigent(tmp_path, "down")
    assert started.returncode != 0
    output = started.stdout + started.stderr
    assert "broken.asl.json" in output
    assert "Traceback" not in started.stderr
