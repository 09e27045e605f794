"""What the demo does, decided before it starts: the orders and the trouble.

The plan is a pure function of the number of orders, so two runs of the same
size exercise the same paths: most orders are small and go through; every
fifth card is declined; every fourth order holds a monitor (over the review
threshold, so a fraud reviewer decides) and some of those pay with a card the
reviewer rejects; a few want more monitors than the shop has. Trouble comes
at fixed points of the stream: one ``shipping`` replica is killed a quarter
of the way in, and ``payments`` is slow from 40% to 70% of it.

This module must never do I/O: it only decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from dirigent.demo.invariants import Item, PlannedOrder

GOOD_CARD = "4242424242424242"
#: payments declines cards ending in 0002
DECLINED_CARD = "4000000000000002"
#: the reviewer rejects cards ending in 6666
STOLEN_CARD = "4000000000006666"

SMALL_CARTS = (
    (Item("kb-01", 1), Item("ms-02", 1)),
    (Item("cb-10", 3),),
    (Item("hd-05", 1), Item("cb-10", 1)),
    (Item("ms-02", 2),),
)


@dataclass(frozen=True, slots=True)
class Trouble:
    """Before which order (its index) each fault starts or stops."""

    kill_shipping: int
    slow_payments: int
    fast_payments: int


def plan_orders(count: int, prefix: str) -> list[PlannedOrder]:
    orders = []
    for i in range(count):
        items = SMALL_CARTS[i % len(SMALL_CARTS)]
        card = DECLINED_CARD if i % 5 == 2 else GOOD_CARD
        if i % 4 == 3:  # over the review threshold
            items = (Item("mn-27", 1),)
            card = STOLEN_CARD if i % 8 == 7 else card
        if i % 10 == 9:  # more monitors than the shop holds by then: out of stock
            items = (Item("kb-01", 1), Item("mn-27", 3))
        orders.append(PlannedOrder(f"{prefix}-{i:03d}", items, card, f"{i + 1} Demo Street"))
    return orders


def plan_trouble(count: int) -> Trouble:
    return Trouble(
        kill_shipping=max(1, count // 4),
        slow_payments=max(2, count * 2 // 5),
        fast_payments=max(3, count * 7 // 10),
    )
