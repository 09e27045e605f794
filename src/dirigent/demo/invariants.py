"""The shop's business invariants, checked from the services' own records.

The engine's word is not enough: an execution that says SUCCEEDED proves
nothing about the money. So the checker reads what each service wrote in its
own database (stock and reservations, charges and refunds, shipments, every
request with the replica's readiness, every replica boot) and the demo's own
plan (which orders it started, with which cards), and reports every broken
rule as a :class:`Violation`:

- ``stock-balance``: for every sku, ``on_hand == initial - reserved`` and never negative;
- ``execution-lost`` / ``execution-stuck``: every order started has an
  execution, and it ended;
- ``completed-*``: a SUCCEEDED order holds its stock, was charged exactly once
  the priced amount, and has exactly one live shipment;
- ``compensated-*``: any other ending left no stock reserved, no charge
  standing and no live shipment;
- ``declined-card-charged``: a card the bank declines is never charged;
- ``served-while-not-ready``: no replica served a request before it was ready;
- ``killed-service-came-back``: each killed replica booted again and became ready.

Pure: records in, violations out; no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]

#: execution statuses that mean the order should have been compensated
ENDED_UNSUCCESSFULLY = ("FAILED", "TIMED_OUT", "ABORTED")
DECLINED_SUFFIX = "0002"


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    """An order the demo started, as it sent it."""

    order_id: str
    items: tuple[Item, ...]
    card: str
    address: str = "1 Demo Street"

    def as_input(self) -> dict[str, object]:
        return {
            "orderId": self.order_id,
            "items": [{"sku": i.sku, "quantity": i.quantity} for i in self.items],
            "card": self.card,
            "address": self.address,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the engine says an order's execution ended (``status`` as DescribeExecution's)."""

    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Kill:
    """A replica the demo killed with SIGKILL, at wall-clock ``at`` (seconds since the epoch)."""

    service: str
    replica: str
    pid: int
    at: float


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ShopRecords:
    """What the services' databases hold; each table a list of rows (column -> value)."""

    prices: Mapping[str, int] = field(default_factory=dict)
    stock: Sequence[Row] = ()
    reservations: Sequence[Row] = ()
    charges: Sequence[Row] = ()
    shipments: Sequence[Row] = ()
    #: service -> its ``requests`` rows
    requests: Mapping[str, Sequence[Row]] = field(default_factory=dict)
    #: service -> its ``boots`` rows
    boots: Mapping[str, Sequence[Row]] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, tables: Mapping[str, Mapping[str, Sequence[Row]]]) -> ShopRecords:
        """From ``{service: {table: rows}}``, as the services' ``GET /records`` answer."""

        def table(service: str, name: str) -> Sequence[Row]:
            return tables.get(service, {}).get(name, ())

        return cls(
            prices={p["sku"]: int(p["price_cents"]) for p in table("catalog", "products")},
            stock=table("inventory", "stock"),
            reservations=table("inventory", "reservations"),
            charges=table("payments", "charges"),
            shipments=table("shipping", "shipments"),
            requests={s: t.get("requests", ()) for s, t in tables.items()},
            boots={s: t.get("boots", ()) for s, t in tables.items()},
        )


def check(
    orders: Sequence[PlannedOrder],
    outcomes: Mapping[str, Outcome],
    records: ShopRecords,
    kills: Sequence[Kill] = (),
) -> list[Violation]:
    """Every invariant the records break; empty when the shop's books are right."""
    violations = _stock_balance(records)
    for order in orders:
        violations += _order(order, outcomes.get(order.order_id), records)
    violations += _readiness(records)
    violations += _came_back(kills, records)
    violations += _made_progress(orders, outcomes)
    return violations


#: the share of orders paid with a good card that must complete: compensating
#: everything would keep every other invariant and still be a broken shop
MIN_COMPLETED_SHARE = 0.5
#: below this many ended good-card orders, bad luck is not evidence of a broken shop
MIN_ENDED_FOR_PROGRESS = 4
_BAD_CARDS = (DECLINED_SUFFIX, "6666")


def _made_progress(
    orders: Sequence[PlannedOrder], outcomes: Mapping[str, Outcome]
) -> list[Violation]:
    # Orders that never ended are the lost/stuck invariants' business, not this one's.
    ended = [
        found.status
        for o in orders
        if not o.card.endswith(_BAD_CARDS)
        and (found := outcomes.get(o.order_id)) is not None
        and found.status != "RUNNING"
    ]
    completed = ended.count("SUCCEEDED")
    if len(ended) >= MIN_ENDED_FOR_PROGRESS and completed < MIN_COMPLETED_SHARE * len(ended):
        return [
            Violation(
                "progress",
                "orders",
                f"only {completed} of {len(ended)} orders with a good card completed",
            )
        ]
    return []


def _stock_balance(records: ShopRecords) -> list[Violation]:
    reserved: Counter[str] = Counter()
    for row in records.reservations:
        if row["state"] == "reserved":
            reserved[row["sku"]] += int(row["quantity"])
    found = []
    for row in records.stock:
        sku, initial, on_hand = row["sku"], int(row["initial"]), int(row["on_hand"])
        if on_hand < 0 or on_hand != initial - reserved[sku]:
            found.append(
                Violation(
                    "stock-balance",
                    sku,
                    f"on hand {on_hand}, but {initial} initial - {reserved[sku]} reserved "
                    f"= {initial - reserved[sku]}",
                )
            )
    return found


def _order(order: PlannedOrder, outcome: Outcome | None, records: ShopRecords) -> list[Violation]:
    oid = order.order_id
    held = [r for r in records.reservations if r["order_id"] == oid and r["state"] == "reserved"]
    charges = [c for c in records.charges if c["order_id"] == oid]
    standing = [c for c in charges if c["state"] == "charged"]
    shipped = [s for s in records.shipments if s["order_id"] == oid and s["state"] == "created"]
    found: list[Violation] = []
    if order.card.endswith(DECLINED_SUFFIX) and charges:
        found.append(Violation("declined-card-charged", oid, f"{len(charges)} charge(s)"))
    if outcome is None:
        return [*found, Violation("execution-lost", oid, "no execution found for the order")]
    if outcome.status == "RUNNING":
        return [*found, Violation("execution-stuck", oid, "still RUNNING after the run")]
    if outcome.status == "SUCCEEDED":
        wanted = Counter({i.sku: i.quantity for i in order.items})
        got = Counter({r["sku"]: int(r["quantity"]) for r in held})
        if got != wanted:
            found.append(
                Violation(
                    "completed-stock-taken", oid, f"reserved {dict(got)}, ordered {dict(wanted)}"
                )
            )
        total = sum(records.prices.get(i.sku, 0) * i.quantity for i in order.items)
        if len(standing) != 1 or len(charges) != 1:
            found.append(
                Violation(
                    "completed-charged-once",
                    oid,
                    f"{len(charges)} charge(s), {len(standing)} standing",
                )
            )
        elif int(standing[0]["amount_cents"]) != total:
            found.append(
                Violation(
                    "completed-charged-once",
                    oid,
                    f"charged {standing[0]['amount_cents']} cents, priced {total}",
                )
            )
        if len(shipped) != 1:
            found.append(Violation("completed-one-shipment", oid, f"{len(shipped)} shipment(s)"))
        return found
    if held:
        skus = ", ".join(sorted(r["sku"] for r in held))
        found.append(Violation("compensated-stock-released", oid, f"still reserved: {skus}"))
    if standing:
        found.append(Violation("compensated-charge-refunded", oid, "a charge still stands"))
    if shipped:
        found.append(Violation("compensated-no-shipment", oid, "a shipment is still live"))
    return found


def _readiness(records: ShopRecords) -> list[Violation]:
    found = []
    for service, rows in sorted(records.requests.items()):
        early = [r for r in rows if not r["ready"]]
        if early:
            replicas = ", ".join(sorted({str(r["replica"]) for r in early}))
            found.append(
                Violation(
                    "served-while-not-ready",
                    service,
                    f"{len(early)} request(s) served before ready by {replicas}",
                )
            )
    return found


def _came_back(kills: Sequence[Kill], records: ShopRecords) -> list[Violation]:
    found = []
    for kill in kills:
        boots = records.boots.get(kill.service, ())
        back = [
            b
            for b in boots
            if b["replica"] == kill.replica
            and b["pid"] != kill.pid
            and float(b["started_at"]) > kill.at
            and b["ready_at"] is not None
        ]
        if not back:
            found.append(
                Violation(
                    "killed-service-came-back",
                    kill.replica,
                    f"no ready boot after pid {kill.pid} was killed",
                )
            )
    return found
