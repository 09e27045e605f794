"""The shop's services on their own, as real processes: idempotency, compensation, readiness."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SHOP = Path(__file__).parents[2] / "examples" / "shop"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Running:
    def __init__(self, port: int, db: Path) -> None:
        self.port, self.db = port, db

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", json.dumps(body).encode(), headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def health(self) -> int:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as db:
            return db.execute(query).fetchall()


def _start(tmp_path: Path, script: str, warmup: float) -> tuple[subprocess.Popen[bytes], Running]:
    port, db = _free_port(), tmp_path / f"{script}.db"
    env = {**os.environ, "PORT": str(port), "SHOP_DB": str(db), "SHOP_WARMUP": str(warmup)}
    process = subprocess.Popen(
        [sys.executable, str(SHOP / f"{script}.py")], cwd=SHOP, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    running = Running(port, db)
    deadline = time.monotonic() + 30
    while running.health() == 0:  # listening, ready or not
        assert time.monotonic() < deadline
        assert process.poll() is None
        time.sleep(0.02)
    return process, running


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[[str, float], Running]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, warmup: float = 0.0) -> Running:
        process, running = _start(tmp_path, script, warmup)
        started.append(process)
        if warmup == 0.0:
            deadline = time.monotonic() + 30
            while running.health() != 200:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        return running

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


CHARGE = {"orderId": "o-1", "amountCents": 4900, "card": "4242424242424242"}


def test_a_repeated_key_gets_the_recorded_answer_and_charges_nothing_more(service: Any) -> None:
    payments = service("payments")
    first = payments.post("/charge", CHARGE, key="k-1")
    again = payments.post("/charge", CHARGE, key="k-1")
    assert first[0] == again[0] == 200
    assert first == again
    assert payments.rows("SELECT COUNT(*) FROM charges") == [(1,)]
    assert payments.rows("SELECT replayed FROM requests ORDER BY id") == [(0,), (1,)]


def test_a_retry_with_a_new_key_finds_the_orders_charge_instead_of_charging_again(
    service: Any,
) -> None:
    payments = service("payments")
    first = payments.post("/charge", CHARGE, key="attempt-1")
    retried = payments.post("/charge", CHARGE, key="attempt-2")
    assert retried[1]["chargeId"] == first[1]["chargeId"]
    assert payments.rows("SELECT COUNT(*) FROM charges") == [(1,)]


def test_a_declined_card_is_recorded_and_not_charged(service: Any) -> None:
    payments = service("payments")
    status, body = payments.post("/charge", {**CHARGE, "card": "4000000000000002"}, key="k")
    assert (status, body["error"]) == (402, "Payments.Declined")
    assert payments.rows("SELECT COUNT(*) FROM charges") == [(0,)]
    assert payments.rows("SELECT order_id FROM declines") == [("o-1",)]


def test_a_charge_that_arrives_after_the_refund_is_refused(service: Any) -> None:
    payments = service("payments")
    assert payments.post("/refund", {"orderId": "o-1"}, key="r")[1]["refunded"] is False
    status, body = payments.post("/charge", CHARGE, key="late")
    assert (status, body["error"]) == (409, "Payments.OrderVoided")
    assert payments.rows("SELECT COUNT(*) FROM charges") == [(0,)]


def test_releasing_an_order_puts_its_stock_back_and_refuses_late_reservations(
    service: Any,
) -> None:
    inventory = service("inventory")
    before = inventory.rows("SELECT on_hand FROM stock WHERE sku = 'kb-01'")[0][0]
    assert (
        inventory.post("/reserve", {"orderId": "o-1", "sku": "kb-01", "quantity": 3}, "a")[0] == 200
    )
    assert inventory.post("/release", {"orderId": "o-1"}, "b")[1]["released"] == 1
    late = inventory.post("/reserve", {"orderId": "o-1", "sku": "ms-02", "quantity": 1}, "c")
    assert late[0] == 409
    assert inventory.rows("SELECT on_hand FROM stock WHERE sku = 'kb-01'") == [(before,)]


def test_a_replica_is_not_ready_while_it_warms_up_and_says_so_in_its_records(
    service: Any,
) -> None:
    catalog = service("catalog", 2.0)
    assert catalog.health() == 503
    early = catalog.post("/price", {"orderId": "o-1", "items": [{"sku": "kb-01", "quantity": 1}]})
    assert early[0] == 200
    deadline = time.monotonic() + 30
    while catalog.health() != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    catalog.post("/price", {"orderId": "o-2", "items": [{"sku": "kb-01", "quantity": 1}]})
    assert catalog.rows("SELECT ready FROM requests ORDER BY id") == [(0,), (1,)]
