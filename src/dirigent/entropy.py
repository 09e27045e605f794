"""Sources of randomness handed to the pure cores.

The cores never import ``random`` or ``uuid``: they receive an ``Entropy``.
:class:`SystemEntropy` is what a real execution uses; :class:`SeededEntropy`
replays the same numbers for a given seed, for tests and reproducible runs.
"""

from __future__ import annotations

import random
import uuid


class SystemEntropy:
    """Randomness from the operating system (UUIDs) and a private generator."""

    def __init__(self) -> None:
        self._random = random.SystemRandom()

    def uuid4(self) -> str:
        return str(uuid.uuid4())

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        if seed is not None:
            return random.Random(seed).randrange(start, end)
        return self._random.randrange(start, end)

    def random_float(self, seed: int | None) -> float:
        if seed is not None:
            return random.Random(seed).random()
        return self._random.random()


class SeededEntropy:
    """The same sequence of UUIDs and numbers for the same seed."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def random_int(self, start: int, end: int, seed: int | None) -> int:
        if seed is not None:
            return random.Random(seed).randrange(start, end)
        return self._random.randrange(start, end)

    def random_float(self, seed: int | None) -> float:
        if seed is not None:
            return random.Random(seed).random()
        return self._random.random()
