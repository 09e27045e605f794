"""The shop's invariant checker: books that are right pass, each kind of wrong is named."""

from __future__ import annotations

import dataclasses
from typing import Any

from dirigent.demo.invariants import Item, Kill, Outcome, PlannedOrder, ShopRecords, check

PAID = PlannedOrder("o-1", (Item("kb-01", 2),), "4242424242424242")
DECLINED = PlannedOrder("o-2", (Item("kb-01", 1),), "4000000000000002")
ORDERS = (PAID, DECLINED)
OUTCOMES = {"o-1": Outcome("SUCCEEDED"), "o-2": Outcome("FAILED", "Order.PaymentDeclined")}
KILL = Kill("shipping", "shipping-0", pid=100, at=1000.0)


def _books(**changes: Any) -> ShopRecords:
    """A consistent shop: o-1 completed (2 keyboards, charged 9800, shipped), o-2 compensated."""
    books = ShopRecords(
        prices={"kb-01": 4900},
        stock=[{"sku": "kb-01", "initial": 10, "on_hand": 8}],
        reservations=[
            {"order_id": "o-1", "sku": "kb-01", "quantity": 2, "state": "reserved"},
            {"order_id": "o-2", "sku": "kb-01", "quantity": 1, "state": "released"},
        ],
        charges=[{"order_id": "o-1", "amount_cents": 9800, "state": "charged"}],
        shipments=[{"order_id": "o-1", "state": "created"}],
        requests={"payments": [{"replica": "payments-0", "ready": 1}]},
        boots={
            "shipping": [
                {"replica": "shipping-0", "pid": 100, "started_at": 990.0, "ready_at": 990.3},
                {"replica": "shipping-0", "pid": 101, "started_at": 1000.2, "ready_at": 1000.5},
            ]
        },
    )
    return dataclasses.replace(books, **changes)


def _broken(records: ShopRecords, outcomes: dict[str, Outcome] | None = None) -> set[str]:
    found = check(ORDERS, OUTCOMES if outcomes is None else outcomes, records, [KILL])
    return {violation.invariant for violation in found}


def test_consistent_books_break_no_invariant() -> None:
    assert check(ORDERS, OUTCOMES, _books(), [KILL]) == []


def test_stock_that_does_not_add_up_breaks_the_balance() -> None:
    books = _books(stock=[{"sku": "kb-01", "initial": 10, "on_hand": 9}])
    assert _broken(books) == {"stock-balance"}


def test_negative_stock_breaks_the_balance_even_when_it_adds_up() -> None:
    books = _books(
        stock=[{"sku": "kb-01", "initial": 1, "on_hand": -1}],
    )
    assert "stock-balance" in _broken(books)


def test_an_order_without_an_execution_is_lost() -> None:
    assert _broken(_books(), {"o-2": OUTCOMES["o-2"]}) == {"execution-lost"}


def test_an_execution_still_running_is_stuck() -> None:
    assert _broken(_books(), {**OUTCOMES, "o-1": Outcome("RUNNING")}) == {"execution-stuck"}


def test_a_completed_order_must_hold_its_stock() -> None:
    books = _books(
        reservations=[{"order_id": "o-1", "sku": "kb-01", "quantity": 1, "state": "reserved"}],
        stock=[{"sku": "kb-01", "initial": 10, "on_hand": 9}],
    )
    assert _broken(books) == {"completed-stock-taken"}


def test_a_completed_order_charged_twice_is_reported() -> None:
    charges = [{"order_id": "o-1", "amount_cents": 9800, "state": "charged"}] * 2
    assert _broken(_books(charges=charges)) == {"completed-charged-once"}


def test_a_completed_order_charged_the_wrong_amount_is_reported() -> None:
    charges = [{"order_id": "o-1", "amount_cents": 4900, "state": "charged"}]
    assert _broken(_books(charges=charges)) == {"completed-charged-once"}


def test_a_completed_order_never_charged_is_reported() -> None:
    assert _broken(_books(charges=[])) == {"completed-charged-once"}


def test_a_completed_order_without_a_shipment_is_reported() -> None:
    assert _broken(_books(shipments=[])) == {"completed-one-shipment"}


def test_a_compensated_order_still_holding_stock_is_reported() -> None:
    books = _books(
        reservations=[
            {"order_id": "o-1", "sku": "kb-01", "quantity": 2, "state": "reserved"},
            {"order_id": "o-2", "sku": "kb-01", "quantity": 1, "state": "reserved"},
        ],
        stock=[{"sku": "kb-01", "initial": 10, "on_hand": 7}],
    )
    assert _broken(books) == {"compensated-stock-released"}


def test_a_failed_order_whose_charge_stands_is_reported() -> None:
    failed = {**OUTCOMES, "o-1": Outcome("FAILED", "Order.ShippingFailed")}
    books = _books(shipments=[{"order_id": "o-1", "state": "cancelled"}],
                   reservations=[], stock=[])  # fmt: skip
    assert _broken(books, failed) == {"compensated-charge-refunded"}


def test_a_refunded_charge_counts_as_compensated() -> None:
    failed = {**OUTCOMES, "o-1": Outcome("FAILED", "Order.ShippingFailed")}
    books = _books(
        charges=[{"order_id": "o-1", "amount_cents": 9800, "state": "refunded"}],
        shipments=[{"order_id": "o-1", "state": "cancelled"}],
        reservations=[],
        stock=[],
    )
    assert _broken(books, failed) == set()


def test_a_failed_order_with_a_live_shipment_is_reported() -> None:
    failed = {**OUTCOMES, "o-1": Outcome("TIMED_OUT")}
    books = _books(charges=[], reservations=[], stock=[])
    assert _broken(books, failed) == {"compensated-no-shipment"}


def test_a_declined_card_is_never_charged() -> None:
    charges = [
        {"order_id": "o-1", "amount_cents": 9800, "state": "charged"},
        {"order_id": "o-2", "amount_cents": 4900, "state": "refunded"},
    ]
    assert _broken(_books(charges=charges)) == {"declined-card-charged"}


def test_a_request_served_before_ready_is_reported() -> None:
    requests = {"payments": [{"replica": "payments-1", "ready": 0}]}
    assert _broken(_books(requests=requests)) == {"served-while-not-ready"}


def test_a_killed_replica_that_never_booted_again_is_reported() -> None:
    boots = {"shipping": [{"replica": "shipping-0", "pid": 100, "started_at": 990.0,
                           "ready_at": 990.3}]}  # fmt: skip
    assert _broken(_books(boots=boots)) == {"killed-service-came-back"}


def test_a_killed_replica_that_booted_but_never_became_ready_is_reported() -> None:
    boots = {"shipping": [{"replica": "shipping-0", "pid": 101, "started_at": 1000.2,
                           "ready_at": None}]}  # fmt: skip
    assert _broken(_books(boots=boots)) == {"killed-service-came-back"}


def test_records_are_read_from_the_services_tables() -> None:
    tables = {
        "catalog": {"products": [{"sku": "kb-01", "price_cents": 4900}], "requests": []},
        "inventory": {"stock": [{"sku": "kb-01", "initial": 1, "on_hand": 1}]},
        "shipping": {"boots": [{"replica": "shipping-0"}]},
    }
    records = ShopRecords.from_tables(tables)
    assert records.prices == {"kb-01": 4900}
    assert list(records.stock) == [{"sku": "kb-01", "initial": 1, "on_hand": 1}]
    assert records.boots["shipping"] == [{"replica": "shipping-0"}]
    assert records.charges == ()


def test_a_shop_that_compensates_every_good_order_made_no_progress() -> None:
    orders = [PlannedOrder(f"g-{n}", (Item("kb-01", 1),), "4242424242424242") for n in range(4)]
    outcomes = {o.order_id: Outcome("FAILED", "Order.ShippingUnavailable") for o in orders}
    books = _books(charges=[], shipments=[], reservations=[],
                   stock=[{"sku": "kb-01", "initial": 10, "on_hand": 10}])  # fmt: skip
    found = {v.invariant for v in check(orders, outcomes, books)}
    assert found == {"progress"}
