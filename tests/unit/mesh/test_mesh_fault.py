"""Fault injection delays and aborts the configured share of requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dirigent.mesh.policy.fault import NO_FAULT, Abort, Delay, Fault, FaultPlan, plan


def draws(*values: float) -> Callable[[], float]:
    it: Iterator[float] = iter(values)
    return lambda: next(it)


def test_no_fault_configured_takes_no_draw() -> None:
    assert plan(None, draws()) is NO_FAULT
    assert plan(Fault(), draws()) is NO_FAULT


def test_a_delay_applies_when_the_draw_falls_under_its_percentage() -> None:
    fault = Fault(delay=Delay(0.5, percent=10))
    assert plan(fault, draws(0.05)) == FaultPlan(delay=0.5)
    assert plan(fault, draws(0.10)) is NO_FAULT


def test_an_abort_answers_its_status_for_its_share() -> None:
    fault = Fault(abort=Abort(503, percent=50))
    assert plan(fault, draws(0.49)) == FaultPlan(abort=503)
    assert plan(fault, draws(0.5)) is NO_FAULT


def test_delay_and_abort_are_drawn_independently_and_can_both_apply() -> None:
    fault = Fault(delay=Delay(1.0, percent=50), abort=Abort(500, percent=50))
    assert plan(fault, draws(0.1, 0.1)) == FaultPlan(1.0, 500)
    assert plan(fault, draws(0.9, 0.1)) == FaultPlan(0.0, 500)
    assert plan(fault, draws(0.1, 0.9)) == FaultPlan(1.0, None)


def test_zero_and_full_percentages_are_never_and_always() -> None:
    assert plan(Fault(abort=Abort(500, percent=0)), draws(0.0)) is NO_FAULT
    assert plan(Fault(abort=Abort(500, percent=100)), draws(0.9999)) == FaultPlan(abort=500)
