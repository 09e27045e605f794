"""Shipping: creates one shipment per order; cancels it when the order is compensated.

- ``POST /ship {orderId, address, items}``: a tracking number, the same one
  for the same order whatever the idempotency key.
- ``POST /cancel {orderId}``: cancels the order's shipment if any, and marks the
  order cancelled so a late ``/ship`` is refused.

The demo kills a shipping replica with SIGKILL mid-run: a request in flight
then leaves nothing behind (its transaction never committed) and the
workflow's Retry reaches the other replica or the restarted one.
"""

from __future__ import annotations

import sqlite3
import time
import uuid

from shoplib import Json, Shop, rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    tracking TEXT PRIMARY KEY, order_id TEXT UNIQUE, address TEXT, state TEXT,
    created_at REAL, cancelled_at REAL);
CREATE TABLE IF NOT EXISTS cancelled_orders (order_id TEXT PRIMARY KEY, at REAL)
"""


def seed(db: sqlite3.Connection) -> None:
    pass


shop = Shop("shipping", SCHEMA, seed)


@shop.post("/ship")
def ship(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order = request["orderId"]
    if db.execute("SELECT 1 FROM cancelled_orders WHERE order_id = ?", (order,)).fetchone():
        return 409, {"error": "Shipping.OrderCancelled", "message": f"{order} was cancelled"}
    done = db.execute("SELECT tracking FROM shipments WHERE order_id = ?", (order,)).fetchone()
    if done is not None:
        return 200, {"orderId": order, "trackingNumber": done[0]}
    tracking = f"TRK-{uuid.uuid4().hex[:10].upper()}"
    db.execute(
        "INSERT INTO shipments VALUES (?, ?, ?, 'created', ?, NULL)",
        (tracking, order, str(request.get("address", "")), time.time()),
    )
    return 200, {"orderId": order, "trackingNumber": tracking}


@shop.post("/cancel")
def cancel(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order = request["orderId"]
    db.execute("INSERT OR IGNORE INTO cancelled_orders VALUES (?, ?)", (order, time.time()))
    cursor = db.execute(
        "UPDATE shipments SET state = 'cancelled', cancelled_at = ?"
        " WHERE order_id = ? AND state = 'created'",
        (time.time(), order),
    )
    return 200, {"orderId": order, "cancelled": cursor.rowcount > 0}


@shop.get("/records")
def records(db: sqlite3.Connection) -> Json:
    return {
        "shipments": rows(db, "SELECT * FROM shipments"),
        "cancelled_orders": rows(db, "SELECT * FROM cancelled_orders"),
        "requests": rows(db, "SELECT * FROM requests"),
        "boots": rows(db, "SELECT * FROM boots"),
    }


if __name__ == "__main__":
    shop.run()
