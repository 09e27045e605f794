"""The one exception hierarchy every user-facing Dirigent error belongs to.

Errors a user can cause (a bad definition, a bad manifest, bad input, a bad
request) are raised as subclasses of :class:`DirigentError`, carry a message
that names what was wrong and where, and are raised before anything is stored.
Failures *inside* a workflow are not exceptions at all: the workflow core turns
them into data (an ASL error name and cause).

    DirigentError
    ├── DefinitionError          an ASL document that is not a valid state machine
    ├── InputError               execution input or a mock configuration that is unusable
    └── ManifestError            a dirigent.yaml that cannot be loaded

Exceptions from third-party libraries are chained (``raise ... from exc``) so the
original cause stays visible in logs.
"""

from __future__ import annotations

from dataclasses import dataclass


class DirigentError(Exception):
    """Root of every error Dirigent raises on purpose."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a document: where (a JSON pointer) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} at {self.pointer or '/'}"


class DefinitionError(DirigentError):
    """An Amazon States Language document was rejected.

    ``diagnostics`` lists every problem found, each with the JSON pointer of the
    offending node and AWS's wording where AWS has one.
    """

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = diagnostics[0] if diagnostics else Diagnostic("", "invalid definition")
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"SCHEMA_VALIDATION_FAILED: {first}{more}")


class InputError(DirigentError):
    """Execution input or a mock configuration that cannot be used, with the reason."""


class ManifestError(DirigentError):
    """A ``dirigent.yaml`` that cannot be loaded; the message names file, line and path."""
