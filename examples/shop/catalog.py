"""The catalog: prices a cart. ``POST /price {orderId, items: [{sku, quantity}]}``.

Answers ``{orderId, totalCents, currency, lines}``, or 404 ``Catalog.UnknownSku``.
Amounts are integer cents, so totals add up exactly.
"""

from __future__ import annotations

import sqlite3

from shoplib import Json, Shop, rows

PRODUCTS = (
    ("kb-01", "Mechanical keyboard", 4900),
    ("ms-02", "Wireless mouse", 1950),
    ("mn-27", "27-inch monitor", 32900),
    ("hd-05", "Headset", 8900),
    ("cb-10", "USB-C cable", 990),
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, name TEXT, price_cents INTEGER)"
)


def seed(db: sqlite3.Connection) -> None:
    db.executemany("INSERT OR IGNORE INTO products VALUES (?, ?, ?)", PRODUCTS)


shop = Shop("catalog", SCHEMA, seed)


@shop.post("/price")
def price(db: sqlite3.Connection, order: Json) -> tuple[int, Json]:
    lines, total = [], 0
    for item in order.get("items", []):
        found = db.execute(
            "SELECT price_cents FROM products WHERE sku = ?", (item.get("sku"),)
        ).fetchone()
        if found is None:
            return 404, {
                "error": "Catalog.UnknownSku",
                "message": f"no product {item.get('sku')!r}",
            }
        amount = found[0] * int(item["quantity"])
        lines.append({"sku": item["sku"], "quantity": item["quantity"], "amountCents": amount})
        total += amount
    return 200, {"orderId": order.get("orderId"), "totalCents": total, "currency": "EUR",
                 "lines": lines}  # fmt: skip


@shop.get("/records")
def records(db: sqlite3.Connection) -> Json:
    return {
        "products": rows(db, "SELECT * FROM products"),
        "requests": rows(db, "SELECT * FROM requests"),
        "boots": rows(db, "SELECT * FROM boots"),
    }


if __name__ == "__main__":
    shop.run()
