"""What an expression can see while a state runs, and where its randomness comes from.

Paths, intrinsic functions and JSONata expressions all evaluate against a
:class:`Scope`: the state's current input (``$``), the context object (``$$``),
the workflow variables in reach, and an :class:`Entropy` that supplies UUIDs and
random numbers. Entropy is an argument, never a module-level generator, so an
execution replays identically and tests can fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from dirigent.asl.model import Json


class Entropy(Protocol):
    """The source of randomness for ``States.UUID``, ``States.MathRandom``, ``$uuid``..."""

    def uuid4(self) -> str:
        """A random UUID (version 4) in its canonical lower-case text form."""
        ...

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        """A whole number in ``[start, end)``; the same seed gives the same number."""
        ...

    def random_float(self, seed: int | None) -> float:
        """A number in ``[0, 1)``; the same seed gives the same number."""
        ...


@dataclass(frozen=True, slots=True)
class Scope:
    """Everything an expression may read while one state runs."""

    input: Json
    context: Json
    variables: Mapping[str, Json]
    entropy: Entropy
