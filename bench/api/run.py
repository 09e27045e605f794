"""StartExecution through the API server: requests per second and latency, 32 clients.

Starts a real ``dirigent server`` (SQLite in a temporary directory) and drives
``StartExecution`` for a one-Pass-state machine two ways, each with 32
concurrent clients on their own connections:

- **boto3**: the real SDK client, one per thread (signing, retries config,
  response parsing included: what users see);
- **raw HTTP**: ``http.client`` keep-alive connections sending SigV4-signed
  requests (signed with botocore's signer, outside the timed section), so the
  figure is the server's and not the SDK's.

Each mode warms up, then runs for ``--seconds``; the server's engine runs the
started executions to completion at the same time, as it would in production.
A third row calls ``engine.executions.start_execution`` on an in-process
engine (its own SQLite file, same 32 threads, no HTTP): the ceiling the API
is measured against. Prints requests/s, p50 and p99 in milliseconds, and the
share of the engine's worker loop time spent working while the clients ran
(the server's from ``GET /api/v1/engine``): near 100 % the engine set the
pace, lower it waited for requests. Bounded in time; loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.api.conftest import Server, start_server, stop_server  # noqa: E402

from dirigent.api.keyfile import new_principal, write_principals  # noqa: E402
from dirigent.engine import Engine  # noqa: E402
from dirigent.store import open_store  # noqa: E402

DEFINITION = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def run_clients(
    clients: int,
    seconds: float,
    make: Callable[[int], Callable[[int], None]],
    started: Callable[[], None] = lambda: None,
) -> tuple[int, list[float]]:
    """``clients`` threads calling for ``seconds`` once all are set up; ``started``
    is called the moment they begin."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def loop(index: int) -> None:
        call = make(index)
        barrier.wait()
        n = 0
        while not stop.is_set():
            began = time.perf_counter()
            call(n)
            latencies[index].append(time.perf_counter() - began)
            n += 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    flat = [x for per in latencies for x in per]
    return len(flat), flat


class BusyShare:
    """The share of the worker loop's time spent busy between :meth:`start` and a call."""

    def __init__(self, read: Callable[[], tuple[float, float]]) -> None:
        self._read = read
        self._before = (0.0, 0.0)

    def start(self) -> None:
        self._before = self._read()

    def __call__(self) -> float:
        busy, idle = self._read()
        worked, waited = busy - self._before[0], idle - self._before[1]
        return worked / (worked + waited) if worked + waited > 0 else 0.0


def server_loop(server: Server) -> tuple[float, float]:
    request = urllib.request.Request(
        server.url + "/api/v1/engine",
        headers={"Authorization": f"Bearer {server.admin.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        stats = json.loads(response.read())
    return stats["busySeconds"], stats["idleSeconds"]


def report(
    name: str, count: int, latencies: list[float], seconds: float, loop_busy: float
) -> dict[str, Any]:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    row = {
        "mode": name,
        "requests": count,
        "rps": count / seconds,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "worker_loop_busy": loop_busy,
    }
    print(
        f"{name:10s} {row['rps']:8.0f} req/s   p50 {row['p50_ms']:6.1f} ms   "
        f"p99 {row['p99_ms']:6.1f} ms   ({count} requests)   worker loop busy {loop_busy:.0%}",
        flush=True,
    )
    return row


def boto3_mode(server: Server, machine: str, run: str) -> Callable[[int], Callable[[int], None]]:
    def make(index: int) -> Callable[[int], None]:
        client = server.client()

        def call(n: int) -> None:
            client.start_execution(stateMachineArn=machine, name=f"{run}-b{index}-{n}")

        return call

    return make


def raw_mode(server: Server, machine: str, run: str) -> Callable[[int], Callable[[int], None]]:
    host, port = server.url.removeprefix("http://").split(":")
    credentials = Credentials(server.admin.access_key_id, server.admin.secret_access_key)

    def make(index: int) -> Callable[[int], None]:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        # Pre-signed requests: signing is the client's cost, not the server's.
        signed: list[tuple[bytes, dict[str, str]]] = []
        for n in range(1_000):
            body = json.dumps({"stateMachineArn": machine, "name": f"{run}-r{index}-{n}"})
            request = AWSRequest(
                method="POST",
                url=server.url + "/",
                data=body.encode(),
                headers={
                    "X-Amz-Target": "AWSStepFunctions.StartExecution",
                    "Content-Type": "application/x-amz-json-1.0",
                },
            )
            SigV4Auth(credentials, "states", "us-east-1").add_auth(request)
            signed.append((body.encode(), dict(request.headers.items())))

        def call(n: int) -> None:
            body, headers = signed[n % len(signed)]
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200 and n < len(signed):
                raise RuntimeError(f"status {response.status}")

        return call

    return make


def engine_direct(data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same calls on an in-process engine with no HTTP: the ceiling the API is held to."""
    engine = Engine(open_store(f"sqlite:///{data_dir / 'direct.db'}"))
    engine.start()
    try:
        machine = engine.catalog.create_state_machine(
            {"name": "bench", "definition": json.dumps(DEFINITION), "roleArn": "r"}
        )["stateMachineArn"]

        def mode(run: str) -> Callable[[int], Callable[[int], None]]:
            def make(index: int) -> Callable[[int], None]:
                def call(n: int) -> None:
                    engine.executions.start_execution(
                        {"stateMachineArn": machine, "name": f"{run}-d{index}-{n}"}
                    )

                return call

            return make

        run_clients(args.clients, args.warmup, mode("w"))
        stats = engine.worker.stats
        busy = BusyShare(lambda: (stats.busy_seconds, stats.idle_seconds))
        count, latencies = run_clients(args.clients, args.seconds, mode("m"), busy.start)
        return report("engine", count, latencies, args.seconds, busy())
    finally:
        engine.stop()
        engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    # Other work on the machine moves these figures; say how busy it was.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        admin = new_principal("admin", "admin")
        write_principals(data_dir, [admin])
        process, url = start_server(data_dir)
        try:
            server = Server(url, data_dir, process, admin, admin, admin)
            machine = server.client().create_state_machine(
                name="bench", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::1:role/r"
            )["stateMachineArn"]
            rows = []
            for name, mode in (("boto3", boto3_mode), ("raw HTTP", raw_mode)):
                run_clients(args.clients, args.warmup, mode(server, machine, f"w{name[0]}"))
                busy = BusyShare(lambda: server_loop(server))
                count, latencies = run_clients(
                    args.clients, args.seconds, mode(server, machine, name[0]), busy.start
                )
                rows.append(report(name, count, latencies, args.seconds, busy()))
            rows.append(engine_direct(data_dir, args))
            print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            print(json.dumps(rows))
        finally:
            stop_server(process)


if __name__ == "__main__":
    main()
