"""A Step Functions client for Dirigent (or AWS), on the standard library alone.

Every call is one signed ``POST /`` with ``X-Amz-Target: AWSStepFunctions.<Action>``;
errors come back as :class:`StepFunctionsError` carrying AWS's error code.
:meth:`StepFunctions.run` starts an execution and waits for its end.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dirigent.errors import DirigentError
from dirigent.sigv4 import SignedRequest, sign

CONTENT_TYPE = "application/x-amz-json-1.0"


class StepFunctionsError(DirigentError):
    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class ExecutionFailed(DirigentError):
    """An awaited execution ended without succeeding; ``description`` is DescribeExecution's."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.description = dict(description)
        self.status = str(description.get("status"))
        self.error = description.get("error")
        self.cause = description.get("cause")
        super().__init__(f"execution {self.status}: {self.error or ''} {self.cause or ''}".strip())


class StepFunctions:
    def __init__(
        self,
        endpoint: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        region: str = "us-east-1",
        timeout: float = 70.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._key = access_key_id
        self._secret = secret_access_key
        self.region = region
        self.timeout = timeout
        parts = urlsplit(self.endpoint)
        self._host = parts.netloc
        self._path = parts.path or "/"
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"

    @classmethod
    def from_environment(
        cls, endpoint: str | None = None, data_dir: str | Path | None = None
    ) -> StepFunctions:
        """Credentials from ``DIRIGENT_ACCESS_KEY_ID``/``..._SECRET_ACCESS_KEY`` or the data dir."""
        endpoint = endpoint or os.environ.get("DIRIGENT_SERVER", "http://127.0.0.1:8080")
        key = os.environ.get("DIRIGENT_ACCESS_KEY_ID")
        secret = os.environ.get("DIRIGENT_SECRET_ACCESS_KEY")
        if not (key and secret):
            directory = Path(data_dir or os.environ.get("DIRIGENT_DATA_DIR", ".dirigent"))
            try:
                document = json.loads((directory / "credentials.json").read_text("utf-8"))
                admin = next(p for p in document["principals"] if p.get("role") == "admin")
                key, secret = admin["access_key_id"], admin["secret_access_key"]
            except (OSError, ValueError, KeyError, StopIteration) as exc:
                raise StepFunctionsError(
                    "MissingCredentials",
                    "set DIRIGENT_ACCESS_KEY_ID and DIRIGENT_SECRET_ACCESS_KEY, or point "
                    f"DIRIGENT_DATA_DIR at the server's data directory ({directory})",
                ) from exc
        return cls(endpoint, key, secret)

    def call(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        headers = {
            "host": self._host,
            "content-type": CONTENT_TYPE,
            "x-amz-target": f"AWSStepFunctions.{action}",
        }
        signed = SignedRequest("POST", self._path, "", tuple(headers.items()), payload)
        headers.update(
            sign(
                signed,
                self._key,
                self._secret,
                region=self.region,
                service="states",
                now=datetime.now(UTC),
            )
        )
        request = urllib.request.Request(
            self.endpoint + self._path.rstrip("/") + "/" if self._path == "/" else self.endpoint,
            data=payload,
            method="POST",
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)
                code = str(error.get("__type", "UnknownError")).rsplit("#", 1)[-1]
                message = str(error.get("message", error.get("Message", "")))
            except ValueError:
                code, message = "UnknownError", raw.decode("utf-8", "replace")
            raise StepFunctionsError(code, message, exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise StepFunctionsError("ConnectionError", f"{self.endpoint}: {exc}") from exc
        result: dict[str, Any] = json.loads(text) if text else {}
        return result

    # ------------------------------------------------------------------ conveniences

    def start_execution(
        self, state_machine_arn: str, input: Any = None, name: str | None = None
    ) -> str:
        body: dict[str, Any] = {
            "stateMachineArn": state_machine_arn,
            "input": json.dumps({} if input is None else input),
        }
        if name is not None:
            body["name"] = name
        return str(self.call("StartExecution", body)["executionArn"])

    def describe_execution(self, execution_arn: str) -> dict[str, Any]:
        return self.call("DescribeExecution", {"executionArn": execution_arn})

    def wait(self, execution_arn: str, timeout: float = 300.0, poll: float = 0.05) -> Any:
        """The output of the execution once it succeeds; :class:`ExecutionFailed` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.describe_execution(execution_arn)
            if described["status"] == "SUCCEEDED":
                return json.loads(described.get("output") or "null")
            if described["status"] != "RUNNING":
                raise ExecutionFailed(described)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout} s")
            time.sleep(poll)
            poll = min(poll * 1.5, 1.0)

    def run(
        self,
        state_machine_arn: str,
        input: Any = None,
        name: str | None = None,
        timeout: float = 300.0,
    ) -> Any:
        return self.wait(self.start_execution(state_machine_arn, input, name), timeout)

    def send_task_success(self, token: str, output: Any) -> None:
        self.call("SendTaskSuccess", {"taskToken": token, "output": json.dumps(output)})

    def send_task_failure(self, token: str, error: str, cause: str = "") -> None:
        self.call("SendTaskFailure", {"taskToken": token, "error": error, "cause": cause})

    def send_task_heartbeat(self, token: str) -> None:
        self.call("SendTaskHeartbeat", {"taskToken": token})
