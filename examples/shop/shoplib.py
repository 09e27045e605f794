"""What every shop service shares: an HTTP server, readiness, its SQLite file, idempotency.

A service is a few handlers registered on a :class:`Shop`. The plumbing here
gives each of them the same guarantees, which the demo's checker relies on:

- ``GET /healthz`` answers 503 while the replica warms up (``SHOP_WARMUP``
  seconds after it starts listening) and while it drains after SIGTERM, 200
  otherwise. The replica listens *before* it is ready on purpose: a request
  routed to it too early is served and recorded with ``ready = 0``, so the
  records show whether the runtime only sends traffic to ready replicas.
- Every business request runs in one ``BEGIN IMMEDIATE`` transaction together
  with its record in ``requests`` and, when it carries an ``Idempotency-Key``,
  its answer in ``idempotency``. A repeated key gets the recorded answer and
  changes nothing; a replica killed mid-request leaves no trace at all.
- ``boots`` records when each replica process started and became ready, so a
  checker can see a killed service come back from the service's own data.

Replicas of one service share the SQLite file named by ``SHOP_DB`` (WAL mode,
writers serialised by SQLite's lock). Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Json = dict[str, Any]
#: a business handler: runs inside the request's transaction, returns (status, body)
Handler = Callable[[sqlite3.Connection, Json], tuple[int, Json]]
#: a read-only view of the service's data
Reader = Callable[[sqlite3.Connection], Json]

PLUMBING = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, replica TEXT, pid INTEGER, method TEXT, path TEXT,
    idempotency_key TEXT, status INTEGER, replayed INTEGER, ready INTEGER,
    draining INTEGER, at REAL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, path TEXT, status INTEGER, body TEXT, at REAL);
CREATE TABLE IF NOT EXISTS boots (
    id INTEGER PRIMARY KEY, replica TEXT, pid INTEGER, started_at REAL, ready_at REAL);
"""


def rows(db: sqlite3.Connection, query: str, *args: object) -> list[Json]:
    cursor = db.execute(query, args)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class Shop:
    def __init__(self, name: str, schema: str, seed: Callable[[sqlite3.Connection], None]) -> None:
        self.name = name
        self.replica = os.environ.get("DIRIGENT_REPLICA", f"{name}-0")
        self.db_path = Path(os.environ.get("SHOP_DB", f".dirigent/data/{name}.db"))
        self.warmup = float(os.environ.get("SHOP_WARMUP", "0.3"))
        self.drain = float(os.environ.get("SHOP_DRAIN", "0.5"))
        self.ready = False
        self.draining = False
        self.handlers: dict[str, Handler] = {}
        self.readers: dict[str, Reader] = {}
        #: operator endpoints (fault toggles): not business requests, so neither
        #: recorded nor idempotent
        self._schema, self._seed = schema, seed
        self._boot: int | None = None

    def post(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers[path] = handler
            return handler

        return register

    def get(self, path: str) -> Callable[[Reader], Reader]:
        def register(reader: Reader) -> Reader:
            self.readers[path] = reader
            return reader

        return register

    def connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE,
        # which takes the write lock up front so two replicas never both decide.
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def run(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self.connect()) as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in (PLUMBING + self._schema).split(";"):
                if statement.strip():
                    db.execute(statement)
            self._seed(db)
            cursor = db.execute(
                "INSERT INTO boots (replica, pid, started_at) VALUES (?, ?, ?)",
                (self.replica, os.getpid(), time.time()),
            )
            self._boot = cursor.lastrowid
            db.execute("COMMIT")
        server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), _handler_for(self))
        server.daemon_threads = True
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"{self.replica} listening on {os.environ['PORT']}, pid {os.getpid()}", flush=True)
        if not stop.wait(self.warmup):
            self.ready = True
            with contextlib.closing(self.connect()) as db:
                db.execute("UPDATE boots SET ready_at = ? WHERE id = ?", (time.time(), self._boot))
        stop.wait()
        # Fail readiness first so the runtime stops routing here, then let
        # in-flight requests finish before closing the socket.
        self.draining = True
        time.sleep(self.drain)
        server.shutdown()
        print(f"{self.replica} stopped", flush=True)

    def serve(self, method: str, path: str, key: str | None, payload: Json) -> tuple[int, Json]:
        ready, draining = self.ready, self.draining  # as the replica saw itself on arrival
        if path not in self.handlers:
            return 404, {"error": "NotFound", "message": f"no {method} {path} here"}
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            replayed = 0
            row = None
            if key is not None:
                row = db.execute(
                    "SELECT status, body FROM idempotency WHERE key = ?", (key,)
                ).fetchone()
            if row is not None:
                status, body, replayed = row[0], json.loads(row[1]), 1
            else:
                status, body = self.handlers[path](db, payload)
                if key is not None:
                    db.execute(
                        "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)",
                        (key, path, status, json.dumps(body), time.time()),
                    )
            db.execute(
                "INSERT INTO requests (replica, pid, method, path, idempotency_key, status,"
                " replayed, ready, draining, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.replica, os.getpid(), method, path, key, status, replayed,
                 int(ready), int(draining), time.time()),
            )  # fmt: skip
            db.execute("COMMIT")
            return status, body
        except Exception:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()


def _handler_for(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                healthy = shop.ready and not shop.draining
                self._answer(200 if healthy else 503, {"ready": healthy})
            elif path in shop.readers:
                with contextlib.closing(shop.connect()) as db:
                    self._answer(200, shop.readers[path](db))
            else:
                self._answer(404, {"error": "NotFound"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, {"error": "BadRequest", "message": "expected a JSON body"})
                return
            if not isinstance(payload, dict):
                self._answer(400, {"error": "BadRequest", "message": "expected a JSON object"})
                return
            payload["_headers"] = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, body = shop.serve(
                    "POST", self.path, self.headers.get("Idempotency-Key"), payload
                )
            except Exception as exc:  # a bug or a locked database: the caller may retry
                print(f"{shop.replica}: {self.path}: {exc!r}", file=sys.stderr, flush=True)
                status, body = 500, {"error": "Internal", "message": str(exc)}
            self._answer(status, body)

        def _answer(self, status: int, body: Json) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the requests table is the access log

    return RequestHandler
