"""Restate's side of the engine benchmark, the client: invocations over the ingress.

Each execution is one ``POST /Bench/sequence`` to the Restate server's ingress,
which answers when the invocation has finished; that answer is the execution's
end. Every client thread keeps one HTTP/1.1 connection open, so a request pays
no connection set-up. The service (``restate_service.py``) and the server are
started and registered by ``run.py``.

usage: python bench/engine/restate_side.py INGRESS_PORT [--sizes 3,10] ...
Prints one JSON line with the figures for each workflow size.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from typing import Any

from measure import Deadline, emit, measure


class Client:
    def __init__(self, port: int, deadline: Deadline) -> None:
        self.port = port
        self.deadline = deadline
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.deadline.left()
            )
            self._local.connection = connection
        return connection

    def runner(self, steps: int) -> Any:
        body = json.dumps({"steps": steps, "value": {"n": 1}}).encode()
        headers = {"content-type": "application/json"}

        def run_one(_index: int) -> tuple[float, float]:
            connection = self._connection()
            started = time.time()
            connection.request("POST", "/Bench/sequence", body, headers)
            response = connection.getresponse()
            answer = response.read()
            stopped = time.time()
            if response.status != 200:
                raise RuntimeError(f"Restate answered {response.status}: {answer[:300]!r}")
            self.deadline.left()
            return started, stopped

        return run_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("ingress_port", type=int)
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds at most")
    args = parser.parse_args()
    client = Client(args.ingress_port, Deadline(args.budget))
    results: dict[str, Any] = {}
    for steps in (int(size) for size in args.sizes.split(",")):
        results[str(steps)] = measure(
            client.runner(steps),
            steps=steps,
            count=args.count,
            in_flight=args.in_flight,
            warmup=args.warmup,
        )
    emit({"system": "restate", "store": "restate", "sizes": results})


if __name__ == "__main__":
    main()
