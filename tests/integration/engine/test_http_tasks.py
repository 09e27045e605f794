"""HTTP tasks call real endpoints with AWS's parameter, result and error shapes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dirigent.engine import Engine
from dirigent.store import open_store

HTTP = "arn:aws:states:::http:invoke"


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "headers": dict(self.headers.items()),
            }
        )
        status = 503 if self.path.startswith("/down") else 200
        payload = json.dumps({"charged": True, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (_Handler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _run(tmp_path: Path, state: dict[str, Any]) -> tuple[dict[str, Any], Engine]:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    engine = Engine(store)
    arn = engine.catalog.create_state_machine(
        {
            "name": "http",
            "roleArn": "r",
            "definition": json.dumps(
                {"StartAt": "Call", "States": {"Call": {**state, "End": True}}}
            ),
        }
    )["stateMachineArn"]
    execution = engine.executions.start_execution({"stateMachineArn": arn})
    engine.run_until_idle()
    described = engine.executions.describe_execution(execution)
    engine.worker.stop()
    store.close()
    return described, engine


def test_an_http_task_posts_its_body_and_returns_the_response(
    tmp_path: Path, server: tuple[str, list[dict[str, Any]]]
) -> None:
    base, seen = server
    described, _ = _run(
        tmp_path,
        {
            "Type": "Task",
            "Resource": HTTP,
            "Parameters": {
                "ApiEndpoint": f"{base}/charge",
                "Method": "POST",
                "QueryParameters": {"currency": "EUR"},
                "Headers": {"X-Shop": "dirigent"},
                "RequestBody": {"amount": 12},
            },
        },
    )
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["StatusCode"] == 200
    assert output["ResponseBody"] == {"charged": True, "path": "/charge?currency=EUR"}
    request = seen[0]
    assert (request["method"], json.loads(request["body"])) == ("POST", {"amount": 12})
    assert request["headers"]["X-Shop"] == "dirigent"
    assert request["headers"]["Idempotency-Key"].endswith("/Call/2/0")


def test_an_http_error_status_fails_the_task_with_aws_error_name(
    tmp_path: Path, server: tuple[str, list[dict[str, Any]]]
) -> None:
    base, _ = server
    described, _ = _run(
        tmp_path,
        {
            "Type": "Task",
            "Resource": HTTP,
            "Parameters": {"ApiEndpoint": f"{base}/down", "Method": "GET"},
        },
    )
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Http.StatusCode.503"
    assert json.loads(described["cause"])["StatusCode"] == 503


def test_an_unreachable_endpoint_fails_the_task_with_a_socket_error(tmp_path: Path) -> None:
    described, _ = _run(
        tmp_path,
        {
            "Type": "Task",
            "Resource": HTTP,
            "Parameters": {"ApiEndpoint": "http://127.0.0.1:9/nothing", "Method": "GET"},
        },
    )
    assert (described["status"], described["error"]) == ("FAILED", "States.Http.Socket")


def test_functions_declared_as_module_paths_are_imported_and_called(tmp_path: Path) -> None:
    from dirigent.engine import FunctionRegistry

    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    engine = Engine(
        store, functions=FunctionRegistry({"double": "tests.integration.engine.functions:double"})
    )
    arn = engine.catalog.create_state_machine(
        {
            "name": "f",
            "roleArn": "r",
            "definition": json.dumps(
                {
                    "StartAt": "D",
                    "States": {
                        "D": {
                            "Type": "Task",
                            "End": True,
                            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double",
                        }
                    },
                }
            ),
        }
    )["stateMachineArn"]
    execution = engine.executions.start_execution({"stateMachineArn": arn, "input": "21"})
    engine.run_until_idle()
    assert engine.executions.describe_execution(execution)["output"] == "42"
    engine.worker.stop()
    store.close()
