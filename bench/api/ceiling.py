"""What uvicorn's ASGI machinery costs per request, against a bare asyncio Protocol.

Each variant serves the same trivial answer to the same small ``POST /`` (the
headers of a SigV4-signed Step Functions call, a 100-byte JSON body) in a
server process of its own on uvloop; 32 keep-alive ``http.client`` clients
(as in ``run.py``) drive it for ``--seconds``. The figure is the server
process's CPU time (user + system, from ``/proc``) divided by the requests
answered: what the event loop spends per request, whatever the client's speed.

- ``uvicorn``: uvicorn on uvloop and httptools with ``dirigent server``'s
  settings, an ASGI app that reads the body from ``receive`` and sends the
  response start and body, as ``stepfunctions.handle`` does;
- ``protocol-task``: an ``asyncio.Protocol`` parsing with httptools that runs
  a coroutine per request in a Task (a real handler awaits the engine) and
  writes status, headers and body in one ``transport.write``;
- ``protocol-sync``: the same, answering from the parser's callback without
  a Task;
- ``fastlane-sync``: the mesh's compiled one-call reader
  (:func:`dirigent.mesh.heads.read_request`) instead of httptools, answering
  at once: the floor of any Python front on uvloop.

usage: .venv/bin/python bench/api/ceiling.py [--seconds 8] [--clients 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httptools
import uvloop

from dirigent.mesh.heads import read_request

ANSWER = b'{"executionArn":"arn:aws:states:us-east-1:0:execution:m:x","startDate":1.0}'
HEADERS = {
    "X-Amz-Target": "AWSStepFunctions.StartExecution",
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20261129T101010Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE00/20261129/us-east-1/"
    "states/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
    "Signature=" + "0" * 64,
}
BODY = json.dumps(
    {"stateMachineArn": "arn:aws:states:us-east-1:0:stateMachine:m", "name": "x"}
).encode()


def _head(length: int) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n"
        b"content-length: %d\r\nx-amzn-requestid: 0b0e6e1c-4b7c-4b8e-9f7e-2d1d3c7b9a11\r\n\r\n"
        % length
    )


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    assert headers
    while True:
        message = await receive()
        if not message.get("more_body", False):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/x-amz-json-1.0"),
                (b"content-length", str(len(ANSWER)).encode()),
                (b"x-amzn-requestid", b"0b0e6e1c-4b7c-4b8e-9f7e-2d1d3c7b9a11"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


class Bare(asyncio.Protocol):
    def __init__(self, use_task: bool) -> None:
        self.use_task = use_task
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        headers, body = self.headers, b"".join(self.body)
        self.headers, self.body = [], []
        if self.use_task:
            asyncio.get_running_loop().create_task(self.answer(headers, body))
        else:
            self.transport.write(_head(len(ANSWER)) + ANSWER)

    async def answer(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        decoded = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
        assert decoded
        assert body
        self.transport.write(_head(len(ANSWER)) + ANSWER)


class FastLane(Bare):
    def data_received(self, data: bytes) -> None:
        request = read_request(data, 1 << 20)
        if request is None:
            self.parser.feed_data(data)
        else:
            self.transport.write(_head(len(ANSWER)) + ANSWER)


def serve(variant: str, port: int) -> None:
    if variant == "uvicorn":
        import uvicorn

        uvicorn.Server(
            uvicorn.Config(
                asgi_app,
                host="127.0.0.1",
                port=port,
                loop="uvloop",
                http="httptools",
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                timeout_keep_alive=65,
                lifespan="off",
            )
        ).run()
        return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        use_task = variant == "protocol-task"
        kind = FastLane if variant == "fastlane-sync" else Bare
        server = await loop.create_server(lambda: kind(use_task), "127.0.0.1", port, backlog=256)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(port: int, clients: int, seconds: float) -> int:
    counts = [0] * clients
    stop = threading.Event()
    barrier = threading.Barrier(clients + 1)

    def loop(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        barrier.wait()
        while not stop.is_set():
            connection.request("POST", "/", body=BODY, headers=HEADERS)
            response = connection.getresponse()
            response.read()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return sum(counts)


def measure(variant: str, args: argparse.Namespace) -> tuple[float, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--serve", variant, "--port", str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        drive(port, args.clients, 1.0)  # warm-up
        before = _cpu_seconds(process.pid)
        count = drive(port, args.clients, args.seconds)
        cpu = _cpu_seconds(process.pid) - before
        return count / args.seconds, cpu / count * 1e6
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--variants",
        default="uvicorn,protocol-task,protocol-sync,fastlane-sync",
        help="comma-separated",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for round_ in range(args.rounds):
        for variant in args.variants.split(","):
            rps, cpu_us = measure(variant, args)
            print(
                f"round {round_ + 1} {variant:14s} {rps:8.0f} req/s  "
                f"{cpu_us:6.1f} µs of server CPU per request",
                flush=True,
            )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
