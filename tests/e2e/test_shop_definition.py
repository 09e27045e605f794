"""The shop as written: its manifest (mesh section included) and its order workflow's paths.

The workflow runs offline here, with the services' answers scripted in the
mock format of Step Functions Local, so each compensation path is checked
state by state without starting anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dirigent.manifest import load_manifest
from dirigent.mesh.config import MeshPolicy, MtlsMode
from dirigent.mesh.section import MESH_SECTIONS, unknown_services
from dirigent.testing.local import LocalRun, run_local

SHOP = Path(__file__).parents[2] / "examples" / "shop"
ORDER = {
    "orderId": "o-1",
    "items": [{"sku": "kb-01", "quantity": 1}],
    "card": "4242424242424242",
    "address": "1 Main St",
}


def _mesh() -> MeshPolicy:
    manifest = load_manifest(str(SHOP / "dirigent.yaml"), sections=MESH_SECTIONS)
    policy = manifest.extensions["mesh"]
    assert isinstance(policy, MeshPolicy)
    return policy


def test_the_manifest_loads_with_the_mesh_section_naming_only_its_services() -> None:
    manifest = load_manifest(str(SHOP / "dirigent.yaml"), sections=MESH_SECTIONS)
    assert set(manifest.services) == {"catalog", "inventory", "payments", "shipping", "reviewer"}
    assert manifest.workflows == ("order.asl.json",)
    assert unknown_services(_mesh(), manifest.services) == []
    autoscale = manifest.services["payments"].autoscale
    assert autoscale is not None
    assert autoscale.min < autoscale.max


def test_only_the_engine_may_charge_or_refund_and_every_hop_is_mutual_tls() -> None:
    mesh = _mesh()
    assert mesh.mtls == MtlsMode.STRICT
    access = mesh.access_for("payments")
    assert access.default_deny
    [policy] = access.resolved("shop")
    assert [rule.principals for rule in policy.rules] == [("spiffe://shop/service/engine",)]


def test_shipping_is_retried_and_payments_has_a_timeout_and_a_breaker() -> None:
    mesh = _mesh()
    assert mesh.routes_for("shipping")[-1].retries.attempts == 3
    assert mesh.routes_for("payments")[-1].timeout == 2.5
    assert mesh.destination("payments").outlier_detection is not None


def _run(responses: dict[str, Any], order: dict[str, Any] | None = None) -> LocalRun:
    """Run the workflow with each state answering as ``responses[state]`` scripts."""
    cases = {state: f"{state}-mock" for state in responses}
    config = {
        "StateMachines": {"order": {"TestCases": {"case": cases}}},
        "MockedResponses": {f"{s}-mock": scripted for s, scripted in responses.items()},
    }
    definition = (SHOP / "order.asl.json").read_text(encoding="utf-8")
    return run_local(
        definition, order or ORDER, mock_config=config, test_case="case", state_machine_name="order"
    )


def _ok(body: dict[str, Any]) -> dict[str, Any]:
    return {"0-99": {"Return": {"StatusCode": 200, "ResponseBody": body}}}


def _throw(error: str, upto: int = 99) -> dict[str, Any]:
    return {f"0-{upto}": {"Throw": {"Error": error, "Cause": json.dumps({"StatusCode": 0})}}}


PRICED = _ok({"totalCents": 4900, "currency": "EUR"})
RESERVED = _ok({"sku": "kb-01", "quantity": 1})
CHARGED = _ok({"chargeId": "ch_1", "amountCents": 4900})
DONE = _ok({})


def _visited(run: LocalRun) -> list[str]:
    return [
        e.details["name"]
        for e in run.history
        if e.type.endswith("StateEntered") and isinstance(e.details, dict)
    ]


def test_an_order_that_goes_through_is_confirmed_with_its_tracking_number() -> None:
    run = _run(
        {"PriceCart": PRICED, "Reserve": RESERVED, "Charge": CHARGED,
         "Ship": _ok({"trackingNumber": "TRK-1"})}
    )  # fmt: skip
    assert run.status == "SUCCEEDED", run.cause
    assert run.output["status"] == "CONFIRMED"
    assert run.output["trackingNumber"] == "TRK-1"


def test_a_service_unavailable_for_a_moment_is_retried_not_compensated() -> None:
    flaky_ship = {
        "0": {"Throw": {"Error": "States.Http.StatusCode.503", "Cause": "{}"}},
        "1": {"Throw": {"Error": "States.Http.Socket", "Cause": "connection refused"}},
        "2": {"Return": {"StatusCode": 200, "ResponseBody": {"trackingNumber": "TRK-2"}}},
    }
    run = _run({"PriceCart": PRICED, "Reserve": RESERVED, "Charge": CHARGED, "Ship": flaky_ship})
    assert run.status == "SUCCEEDED", run.cause
    assert _visited(run).count("Ship") == 1


def test_a_declined_card_releases_the_stock_without_a_refund() -> None:
    run = _run(
        {"PriceCart": PRICED, "Reserve": RESERVED,
         "Charge": _throw("States.Http.StatusCode.402", 0), "ReleaseStock": DONE}
    )  # fmt: skip
    assert (run.status, run.error) == ("FAILED", "Order.PaymentDeclined")
    assert "ReleaseStock" in _visited(run)
    assert "RefundCharge" not in _visited(run)


def test_shipping_down_for_good_cancels_refunds_and_releases_in_that_order() -> None:
    run = _run(
        {"PriceCart": PRICED, "Reserve": RESERVED, "Charge": CHARGED,
         "Ship": _throw("States.Http.Socket"), "CancelShipment": DONE, "RefundCharge": DONE,
         "ReleaseStock": DONE}
    )  # fmt: skip
    assert (run.status, run.error) == ("FAILED", "Order.ShippingFailed")
    visited = _visited(run)
    compensation = [s for s in visited if s in ("CancelShipment", "RefundCharge", "ReleaseStock")]
    assert compensation == ["CancelShipment", "RefundCharge", "ReleaseStock"]


def test_an_item_out_of_stock_releases_what_the_others_reserved() -> None:
    order = {**ORDER, "items": [{"sku": "kb-01", "quantity": 1}, {"sku": "mn-27", "quantity": 9}]}
    out_of_stock = {
        "0": {"Return": {"StatusCode": 200, "ResponseBody": {"sku": "kb-01", "quantity": 1}}},
        "1": {"Throw": {"Error": "States.Http.StatusCode.409", "Cause": "{}"}},
    }
    run = _run({"PriceCart": PRICED, "Reserve": out_of_stock, "ReleaseStock": DONE}, order)
    assert (run.status, run.error) == ("FAILED", "Order.OutOfStock")
    assert "ReleaseStock" in _visited(run)


def test_a_big_order_waits_for_the_reviewer_and_a_rejection_compensates() -> None:
    big = _ok({"totalCents": 32900, "currency": "EUR"})
    run = _run(
        {"PriceCart": big, "Reserve": RESERVED, "FraudReview": _throw("Review.Rejected", 0),
         "ReleaseStock": DONE}
    )  # fmt: skip
    assert (run.status, run.error) == ("FAILED", "Order.FraudRejected")
    assert "Charge" not in _visited(run)
