"""Payments: charges an order once, refunds it when the order is compensated.

- ``POST /charge {orderId, amountCents, card}``: one charge per order, whatever
  the idempotency key (a retry after a timeout carries a new one, and the slow
  first attempt may still land); cards ending in ``0002`` are declined (402
  ``Payments.Declined``, recorded in ``declines``, nothing charged).
- ``POST /refund {orderId}``: refunds the order's charge if there is one, and
  voids the order either way, so a charge that arrives after the refund (a
  slow attempt the workflow gave up on) is refused rather than kept.

Latency faults are not the service's business: ``dirigent fault payments
--delay 3 --delay-percent 50`` has the mesh delay its requests.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

from shoplib import Json, Shop, rows

DECLINED_SUFFIX = "0002"

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    charge_id TEXT PRIMARY KEY, order_id TEXT UNIQUE, amount_cents INTEGER, card_last4 TEXT,
    state TEXT, charged_at REAL, refunded_at REAL);
CREATE TABLE IF NOT EXISTS declines (
    id INTEGER PRIMARY KEY, order_id TEXT, amount_cents INTEGER, card_last4 TEXT, at REAL);
CREATE TABLE IF NOT EXISTS voids (order_id TEXT PRIMARY KEY, at REAL)
"""


def seed(db: sqlite3.Connection) -> None:
    pass


shop = Shop("payments", SCHEMA, seed)


@shop.post("/charge")
def charge(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order, amount, card = request["orderId"], int(request["amountCents"]), str(request["card"])
    if db.execute("SELECT 1 FROM voids WHERE order_id = ?", (order,)).fetchone():
        return 409, {"error": "Payments.OrderVoided", "message": f"{order} was refunded"}
    done = db.execute(
        "SELECT charge_id, amount_cents FROM charges WHERE order_id = ?", (order,)
    ).fetchone()
    if done is not None:
        return 200, {"chargeId": done[0], "orderId": order, "amountCents": done[1]}
    if card.endswith(DECLINED_SUFFIX):
        db.execute(
            "INSERT INTO declines (order_id, amount_cents, card_last4, at) VALUES (?, ?, ?, ?)",
            (order, amount, card[-4:], time.time()),
        )
        return 402, {"error": "Payments.Declined", "message": f"card ending {card[-4:]} declined"}
    charge_id = f"ch_{uuid.uuid4().hex[:12]}"
    db.execute(
        "INSERT INTO charges VALUES (?, ?, ?, ?, 'charged', ?, NULL)",
        (charge_id, order, amount, card[-4:], time.time()),
    )
    return 200, {"chargeId": charge_id, "orderId": order, "amountCents": amount}


@shop.post("/refund")
def refund(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order = request["orderId"]
    db.execute("INSERT OR IGNORE INTO voids VALUES (?, ?)", (order, time.time()))
    charged = db.execute(
        "SELECT charge_id FROM charges WHERE order_id = ? AND state = 'charged'", (order,)
    ).fetchone()
    if charged is None:
        return 200, {"orderId": order, "refunded": False}
    db.execute(
        "UPDATE charges SET state = 'refunded', refunded_at = ? WHERE charge_id = ?",
        (time.time(), charged[0]),
    )
    return 200, {"orderId": order, "refunded": True, "chargeId": charged[0]}


@shop.get("/records")
def records(db: sqlite3.Connection) -> Json:
    return {
        "charges": rows(db, "SELECT * FROM charges"),
        "declines": rows(db, "SELECT * FROM declines"),
        "voids": rows(db, "SELECT * FROM voids"),
        "requests": rows(db, "SELECT * FROM requests"),
        "boots": rows(db, "SELECT * FROM boots"),
    }


if __name__ == "__main__":
    shop.run()
