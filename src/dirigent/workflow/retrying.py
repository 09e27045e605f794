"""Retry and Catch: which rule handles an error, and how long to back off.

AWS's matching rules: the rules are tried in order and the first whose
``ErrorEquals`` names the error wins. ``States.ALL`` matches every error but
``States.Runtime`` (run-time errors of the language itself are never retried or
caught). ``States.TaskFailed`` matches every error a Task reports except
``States.Timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence

from dirigent.asl import failure
from dirigent.asl.model import Catcher, Retrier

_UNHANDLEABLE = frozenset({failure.RUNTIME})
_NOT_TASK_FAILED = frozenset({failure.TIMEOUT, failure.RUNTIME})


def handles(error_equals: Sequence[str], error: str) -> bool:
    if error in _UNHANDLEABLE:
        return False
    for name in error_equals:
        if name in (error, failure.ALL):
            return True
        if name == failure.TASK_FAILED and error not in _NOT_TASK_FAILED:
            return True
    return False


def first_retrier(retriers: Sequence[Retrier], error: str) -> int | None:
    for index, retrier in enumerate(retriers):
        if handles(retrier.error_equals, error):
            return index
    return None


def first_catcher(catchers: Sequence[Catcher], error: str) -> Catcher | None:
    for catcher in catchers:
        if handles(catcher.error_equals, error):
            return catcher
    return None


def backoff_seconds(retrier: Retrier, attempts_so_far: int, unit_random: float) -> float:
    """Delay before retry number ``attempts_so_far + 1`` of this retrier.

    ``unit_random`` is a number in [0, 1) supplied by the caller; it is only used
    when ``JitterStrategy`` is ``FULL``, which draws the delay uniformly from
    zero up to the computed backoff.
    """
    delay = retrier.interval_seconds * (retrier.backoff_rate**attempts_so_far)
    if retrier.max_delay_seconds is not None:
        delay = min(delay, float(retrier.max_delay_seconds))
    if retrier.jitter_strategy == "FULL":
        delay *= unit_random
    return delay
