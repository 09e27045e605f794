"""Declaring the Python functions Task states call, with a decorator.

A :class:`Functions` object is a plain mapping from function name to callable;
the application names it in ``dirigent.yaml`` (``functions: shop.tasks:functions``)
or hands it to the engine. There is no global registry: two applications in one
process keep two collections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Functions(Mapping[str, Callable[..., Any]]):
    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}

    def function(self, name: str | None = None) -> Callable[[F], F]:
        """Declare the decorated callable under ``name`` (default: its own name).

        Task states reach it as ``arn:aws:lambda:REGION:ACCOUNT:function:NAME`` or
        through ``arn:aws:states:::lambda:invoke`` with ``FunctionName: NAME``.
        """

        def declare(function: F) -> F:
            key = name or function.__name__
            if key in self._functions:
                raise ValueError(f"a function named {key!r} is declared twice")
            self._functions[key] = function
            return function

        return declare

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._functions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)
