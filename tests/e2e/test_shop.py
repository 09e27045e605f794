"""The shop end to end: ``dirigent demo --once --json``, then the books, read from SQLite.

One short demo run (12 orders, a shipping replica killed, payments slowed) is
shared by the tests below; each then checks one business invariant straight
from the services' own database files, not from the engine or the demo's word.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHOP = Path(__file__).parents[2] / "examples" / "shop"
ORDERS = 12
SERVICES = ("catalog", "inventory", "payments", "shipping", "reviewer")

pytestmark = pytest.mark.slow

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Run:
    app: Path
    result: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    tables: dict[str, dict[str, Rows]]

    def rows(self, service: str, table: str) -> Rows:
        return self.tables[service][table]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _read_tables(database: Path) -> dict[str, Rows]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: [dict(r) for r in db.execute(f"SELECT * FROM {name}")] for name in names}
    finally:
        db.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    app = tmp_path_factory.mktemp("demo") / "shop"
    shutil.copytree(SHOP, app, ignore=shutil.ignore_patterns(".dirigent", "__pycache__"))
    command = [sys.executable, "-m", "dirigent.cli.main", "demo", "--orders", str(ORDERS)]
    command += [
        "--once",
        "--json",
        "--api-port",
        str(_free_port()),
        "-f",
        str(app / "dirigent.yaml"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {}
    data = app / ".dirigent" / "data"
    tables = {s: _read_tables(data / f"{s}.db") for s in SERVICES if (data / f"{s}.db").exists()}
    return Run(app, result, summary, tables)


def _order_ids(run: Run) -> set[str]:
    inventory = run.rows("inventory", "reservations") + run.rows("inventory", "released_orders")
    return {row["order_id"] for row in inventory}


def test_the_demo_exits_zero_with_its_summary_as_the_last_line(run: Run) -> None:
    assert run.result.returncode == 0, run.result.stderr[-3000:]
    assert run.summary["orders"] == ORDERS
    assert run.summary["invariants_hold"] is True, run.summary["violations"]
    assert run.summary["completed"] + run.summary["compensated"] == ORDERS
    assert run.summary["unfinished"] == 0


def test_every_order_reached_the_services(run: Run) -> None:
    # Every planned order asks for known products, so each one reserves or releases stock.
    assert len(_order_ids(run)) == ORDERS


def test_every_order_is_either_completed_or_fully_compensated(run: Run) -> None:
    reservations = run.rows("inventory", "reservations")
    charges = run.rows("payments", "charges")
    shipments = run.rows("shipping", "shipments")
    completed = 0
    for order in _order_ids(run):
        held = [r for r in reservations if r["order_id"] == order and r["state"] == "reserved"]
        standing = [c for c in charges if c["order_id"] == order and c["state"] == "charged"]
        live = [s for s in shipments if s["order_id"] == order and s["state"] == "created"]
        if live:  # completed: stock taken, charged once, one shipment
            completed += 1
            assert held, order
            assert len([c for c in charges if c["order_id"] == order]) == len(standing) == 1
            assert len(live) == 1
        else:  # compensated: stock released, charge refunded or never made
            assert (held, standing) == ([], []), order
    assert completed == run.summary["completed"]


def test_stock_on_hand_is_initial_stock_minus_what_orders_hold(run: Run) -> None:
    held: Counter[str] = Counter()
    for row in run.rows("inventory", "reservations"):
        if row["state"] == "reserved":
            held[row["sku"]] += row["quantity"]
    for row in run.rows("inventory", "stock"):
        assert row["on_hand"] == row["initial"] - held[row["sku"]] >= 0, row


def test_charges_match_the_catalog_price_and_declined_cards_are_never_charged(run: Run) -> None:
    declined = run.rows("payments", "declines")
    assert declined, "the demo sends cards that are declined"
    declined_orders = {row["order_id"] for row in declined}
    assert not [c for c in run.rows("payments", "charges") if c["order_id"] in declined_orders]
    assert all(c["amount_cents"] > 0 for c in run.rows("payments", "charges"))


def test_a_repeated_idempotency_key_was_answered_without_a_second_effect(run: Run) -> None:
    for service in SERVICES:
        keys = Counter(
            r["idempotency_key"] for r in run.rows(service, "requests") if not r["replayed"]
        )
        assert [key for key, n in keys.items() if key and n > 1] == [], service


def test_no_request_was_served_by_a_replica_that_was_not_ready(run: Run) -> None:
    for service in SERVICES:
        early = [r for r in run.rows(service, "requests") if not r["ready"]]
        assert early == [], service


def test_the_killed_shipping_replica_booted_again_and_became_ready(run: Run) -> None:
    boots = run.rows("shipping", "boots")
    by_replica = Counter(b["replica"] for b in boots)
    again = [replica for replica, n in by_replica.items() if n > 1]
    assert again, boots
    latest = max((b for b in boots if b["replica"] == again[0]), key=lambda b: b["started_at"])
    assert latest["ready_at"] is not None


def test_the_fraud_reviewer_answered_every_review(run: Run) -> None:
    reviews = run.rows("reviewer", "reviews")
    assert reviews
    assert {r["state"] for r in reviews} <= {"approved", "rejected", "stale"}
    assert "rejected" in {r["state"] for r in reviews}


def test_the_demo_leaves_no_process_behind(run: Run) -> None:
    pids = {b["pid"] for service in SERVICES for b in run.rows(service, "boots")}
    alive = [pid for pid in pids if _running(pid)]
    assert alive == []
    assert not (run.app / ".dirigent" / "control.sock").exists() or not _answers(run.app)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie runs nothing
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _answers(app: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(app / ".dirigent" / "control.sock"))
        except OSError:
            return False
        return True
