"""Inventory: reserves stock for an order, and releases it when the order is compensated.

- ``POST /reserve {orderId, sku, quantity}``: takes the stock, or 409
  ``Inventory.OutOfStock``; reserving the same (order, sku) again answers the
  same reservation, whatever the idempotency key (a retry after a timeout
  carries a new one).
- ``POST /release {orderId}``: puts back everything the order holds and marks
  the order released, so a reservation that arrives late (a slow attempt the
  workflow already gave up on) is refused instead of taking stock for good.

Invariant the records let anyone check: for every sku,
``on_hand == initial - sum(quantity of reservations still 'reserved')``.
"""

from __future__ import annotations

import sqlite3
import time

from shoplib import Json, Shop, rows

#: the monitor is scarce on purpose: some orders run out of it and are compensated
STOCK = {"kb-01": 100, "ms-02": 100, "mn-27": 4, "hd-05": 40, "cb-10": 200}

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, initial INTEGER, on_hand INTEGER);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT, sku TEXT, quantity INTEGER, state TEXT, reserved_at REAL, released_at REAL,
    PRIMARY KEY (order_id, sku));
CREATE TABLE IF NOT EXISTS released_orders (order_id TEXT PRIMARY KEY, at REAL)
"""


def seed(db: sqlite3.Connection) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO stock VALUES (?, ?, ?)", [(s, n, n) for s, n in STOCK.items()]
    )


shop = Shop("inventory", SCHEMA, seed)


@shop.post("/reserve")
def reserve(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order, sku, quantity = request["orderId"], request["sku"], int(request["quantity"])
    if db.execute("SELECT 1 FROM released_orders WHERE order_id = ?", (order,)).fetchone():
        return 409, {"error": "Inventory.OrderReleased", "message": f"{order} was released"}
    held = db.execute(
        "SELECT quantity FROM reservations WHERE order_id = ? AND sku = ?", (order, sku)
    ).fetchone()
    if held is not None:
        return 200, {"orderId": order, "sku": sku, "quantity": held[0]}
    stock = db.execute("SELECT on_hand FROM stock WHERE sku = ?", (sku,)).fetchone()
    if stock is None or stock[0] < quantity:
        left = 0 if stock is None else stock[0]
        return 409, {"error": "Inventory.OutOfStock", "message": f"{sku}: {left} left"}
    db.execute("UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?", (quantity, sku))
    db.execute(
        "INSERT INTO reservations VALUES (?, ?, ?, 'reserved', ?, NULL)",
        (order, sku, quantity, time.time()),
    )
    return 200, {"orderId": order, "sku": sku, "quantity": quantity}


@shop.post("/release")
def release(db: sqlite3.Connection, request: Json) -> tuple[int, Json]:
    order = request["orderId"]
    db.execute("INSERT OR IGNORE INTO released_orders VALUES (?, ?)", (order, time.time()))
    held = db.execute(
        "SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'reserved'",
        (order,),
    ).fetchall()
    for sku, quantity in held:
        db.execute("UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?", (quantity, sku))
    db.execute(
        "UPDATE reservations SET state = 'released', released_at = ?"
        " WHERE order_id = ? AND state = 'reserved'",
        (time.time(), order),
    )
    return 200, {"orderId": order, "released": len(held)}


@shop.get("/records")
def records(db: sqlite3.Connection) -> Json:
    return {
        "stock": rows(db, "SELECT * FROM stock"),
        "reservations": rows(db, "SELECT * FROM reservations"),
        "released_orders": rows(db, "SELECT * FROM released_orders"),
        "requests": rows(db, "SELECT * FROM requests"),
        "boots": rows(db, "SELECT * FROM boots"),
    }


if __name__ == "__main__":
    shop.run()
