"""The breaker sheds work past each connection-pool limit and closes as work finishes."""

from __future__ import annotations

from dirigent.mesh.policy.breaker import (
    ConnectionPool,
    Limit,
    Load,
    Overflow,
    close_connection,
    connection_spent,
    dequeue,
    finish_request,
    finish_retry,
    is_open,
    open_connection,
    queue,
    start_request,
    start_retry,
)

POOL = ConnectionPool(max_connections=2, max_pending=1, max_requests=3, max_retries=1)


def test_requests_past_max_requests_are_shed_naming_the_limit() -> None:
    load = Load()
    for _ in range(3):
        admitted = start_request(POOL, load)
        assert isinstance(admitted, Load)
        load = admitted
    assert start_request(POOL, load) == Overflow(Limit.REQUESTS)


def test_a_finished_request_makes_room_for_the_next() -> None:
    load = Load(requests=3)
    assert isinstance(start_request(POOL, finish_request(load)), Load)


def test_connections_past_the_limit_are_refused_but_may_queue_once() -> None:
    load = Load(connections=2)
    assert open_connection(POOL, load) == Overflow(Limit.CONNECTIONS)
    queued = queue(POOL, load)
    assert queued == Load(connections=2, pending=1)
    assert queue(POOL, queued) == Overflow(Limit.PENDING)


def test_a_dequeued_request_frees_its_place_in_the_queue() -> None:
    assert dequeue(Load(pending=1)) == Load()


def test_closing_a_connection_allows_a_new_one() -> None:
    assert open_connection(POOL, close_connection(Load(connections=2))) == Load(connections=2)


def test_retries_past_max_retries_are_refused() -> None:
    load = start_retry(POOL, Load())
    assert load == Load(retries=1)
    assert start_retry(POOL, load) == Overflow(Limit.RETRIES)
    assert finish_retry(load) == Load()


def test_the_breaker_is_open_while_requests_are_at_the_limit_and_closes_after() -> None:
    assert not is_open(POOL, Load(requests=2))
    assert is_open(POOL, Load(requests=3))
    assert not is_open(POOL, finish_request(Load(requests=3)))


def test_the_breaker_is_open_when_connections_and_queue_are_both_full() -> None:
    assert not is_open(POOL, Load(connections=2))
    assert is_open(POOL, Load(connections=2, pending=1))


def test_finishing_more_than_was_started_never_goes_below_zero() -> None:
    assert finish_request(Load()) == Load()
    assert close_connection(Load()) == Load()
    assert dequeue(Load()) == Load()
    assert finish_retry(Load()) == Load()


def test_a_connection_is_spent_after_max_requests_per_connection() -> None:
    limited = ConnectionPool(max_requests_per_connection=2)
    assert not connection_spent(limited, 1)
    assert connection_spent(limited, 2)
    assert not connection_spent(ConnectionPool(), 10_000)
