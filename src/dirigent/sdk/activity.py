"""A worker for an activity: poll for a task, run the handler, answer.

The handler gets the task input; what it returns is the task's output; a
:class:`TaskFailure` it raises becomes ``SendTaskFailure`` with that error
name, any other exception a failure named after its type. While a handler
runs, a heartbeat is sent every ``heartbeat_seconds`` so a long task is not
taken for dead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from dirigent.sdk.client import StepFunctions, StepFunctionsError

Handler = Callable[[Any], Any]


class TaskFailure(Exception):
    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class ActivityWorker:
    def __init__(
        self,
        client: StepFunctions,
        activity_arn: str,
        handler: Handler,
        *,
        name: str = "dirigent-worker",
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.activity_arn = activity_arn
        self.handler = handler
        self.name = name
        self.heartbeat_seconds = heartbeat_seconds
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Poll and handle tasks until :meth:`stop` is called.

        A lost connection (the server restarting) is waited out and polling
        resumes; any other error from the server ends the loop with it.
        """
        while not self._stop.is_set():
            try:
                self.run_once()
            except StepFunctionsError as exc:
                if self._stop.is_set():
                    return
                if exc.code != "ConnectionError":
                    raise
                self._stop.wait(1.0)

    def run_once(self) -> bool:
        """Wait for one task (up to the server's long-poll) and handle it; ``False`` if none."""
        task = self.client.call(
            "GetActivityTask", {"activityArn": self.activity_arn, "workerName": self.name}
        )
        token = task.get("taskToken")
        if not token:
            return False
        beating = threading.Event()
        beat = None
        if self.heartbeat_seconds:
            beat = threading.Thread(target=self._heartbeat, args=(token, beating), daemon=True)
            beat.start()
        try:
            output = self.handler(json.loads(task.get("input") or "null"))
        except TaskFailure as failure:
            self.client.send_task_failure(token, failure.error, failure.cause)
        except Exception as exc:  # the handler's failure is the task's failure
            self.client.send_task_failure(token, type(exc).__name__, str(exc))
        else:
            self.client.send_task_success(token, output)
        finally:
            beating.set()
            if beat is not None:
                beat.join()
        return True

    def _heartbeat(self, token: str, done: threading.Event) -> None:
        assert self.heartbeat_seconds is not None
        while not done.wait(self.heartbeat_seconds):
            try:
                self.client.send_task_heartbeat(token)
            except StepFunctionsError:
                return
