"""Reading the fields of one definition object, collecting every problem found.

Its job: give the parser typed access to a JSON object's fields (strings,
integers, paths, payload templates, JSONata values) while recording a
:class:`~dirigent.errors.Diagnostic` with a JSON pointer for each field that is
missing, of the wrong type, out of range or malformed. Reading never stops at
the first problem: a bad field yields ``MISSING`` and the parser carries on, so
one ``DefinitionError`` can list everything that is wrong.

It must never raise for bad input (only the parser decides when to raise), and
never evaluate a path or an expression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dirigent.asl import syntax
from dirigent.asl.jsonload import pointer_escape
from dirigent.asl.jsontext import json_type_name as type_name
from dirigent.asl.model import JSONATA, MISSING, Json, QueryLanguage
from dirigent.errors import Diagnostic

#: AWS's ceiling for every "seconds" and "attempts" integer in a definition.
MAX_INTEGER = 99_999_999


@dataclass(slots=True)
class Report:
    """Every diagnostic found while parsing one definition, in document order."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, pointer: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(pointer, message))


def child(pointer: str, key: str | int) -> str:
    """The pointer of ``key`` inside the node at ``pointer``."""
    return f"{pointer}/{pointer_escape(key) if isinstance(key, str) else key}"


@dataclass(slots=True)
class Fields:
    """One JSON object of the definition, read field by field."""

    raw: Mapping[str, Json]
    pointer: str
    report: Report
    language: QueryLanguage

    def at(self, key: str) -> str:
        return child(self.pointer, key)

    def has(self, key: str) -> bool:
        return key in self.raw

    def error(self, key: str | None, message: str) -> None:
        self.report.error(self.at(key) if key else self.pointer, message)

    def wrong_type(self, key: str, expected: str) -> None:
        got = type_name(self.raw[key])
        self.error(key, f"The value of the field '{key}' must be {expected}, not {got}")

    # ----------------------------------------------------------------- shape

    def require(self, *keys: str) -> bool:
        missing = [k for k in keys if k not in self.raw]
        if len(missing) == 1:
            self.error(None, f"The field '{missing[0]}' is required but was missing")
        elif missing:
            self.error(None, f"These fields are required: [{', '.join(missing)}]")
        return not missing

    def only(self, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for key in self.raw:
            if key not in allowed_set:
                self.error(key, f'The field "{key}" is not supported by Step Functions')

    def exclusive(self, *keys: str) -> bool:
        present = [k for k in keys if k in self.raw]
        if len(present) > 1:
            names = ", ".join(f"'{k}'" for k in present)
            self.error(present[-1], f"Only one of {names} may be set")
            return False
        return True

    # ----------------------------------------------------------------- scalars

    def string(self, key: str, *, nonempty: bool = False) -> Any:
        value = self.raw.get(key, MISSING)
        if value is MISSING:
            return MISSING
        if not isinstance(value, str):
            self.wrong_type(key, "a string")
            return MISSING
        if nonempty and not value:
            self.error(key, f"The value of the field '{key}' must not be empty")
            return MISSING
        return value

    def boolean(self, key: str) -> Any:
        value = self.raw.get(key, MISSING)
        if value is not MISSING and not isinstance(value, bool):
            self.wrong_type(key, "a boolean")
            return MISSING
        return value

    def integer(
        self, key: str, *, minimum: int = 0, maximum: int = MAX_INTEGER, expression: bool = False
    ) -> Any:
        """An integer in range, or, when ``expression``, a JSONata ``{% %}`` string."""
        return self._number(key, minimum, maximum, expression, integral=True)

    def number(self, key: str, *, minimum: float, maximum: float, expression: bool = False) -> Any:
        return self._number(key, minimum, maximum, expression, integral=False)

    def _number(
        self, key: str, minimum: float, maximum: float, expression: bool, *, integral: bool
    ) -> Any:
        value = self.raw.get(key, MISSING)
        if value is MISSING:
            return MISSING
        if expression and self.language == JSONATA and isinstance(value, str):
            return self.jsonata(key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if integral and is_number and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_number or (integral and not isinstance(value, int)):
            self.wrong_type(key, "an integer" if integral else "a number")
            return MISSING
        if value < minimum or value > maximum:
            self.error(
                key, f"The value of the field '{key}' must be between {minimum} and {maximum}"
            )
            return MISSING
        return value

    def choice(self, key: str, options: tuple[str, ...]) -> Any:
        value = self.raw.get(key, MISSING)
        if value is not MISSING and value not in options:
            wanted = ", ".join(options)
            self.error(key, f"The field '{key}' should have one of these values: [{wanted}]")
            return MISSING
        return value

    # ----------------------------------------------------------------- paths

    def path(
        self, key: str, *, reference: bool = False, nullable: bool = False, **allow: bool
    ) -> Any:
        """A JSONPath (``reference`` for a Reference Path); ``None`` kept when ``nullable``."""
        value = self.raw.get(key, MISSING)
        if value is MISSING or (nullable and value is None):
            return value
        if not isinstance(value, str):
            self.wrong_type(key, "a string" if not nullable else "a string or null")
            return MISSING
        problem = syntax.path_error(value, reference=reference, **allow)
        if problem:
            kind = "a valid Reference Path" if reference else "a valid JSONPath"
            self.error(key, f"The value for the field '{key}' must be {kind} ({problem})")
            return MISSING
        return value

    def path_or_intrinsic(self, key: str) -> Any:
        value = self.raw.get(key, MISSING)
        if value is MISSING:
            return MISSING
        if not isinstance(value, str):
            self.wrong_type(key, "a string")
            return MISSING
        if not value_is_path_or_call(value):
            self.error(
                key,
                f"The value for the field '{key}' must be a valid JSONPath "
                "or a valid intrinsic function call",
            )
            return MISSING
        return value

    # ----------------------------------------------------------------- templates

    def template(self, key: str, *, objects_only: bool = False) -> Any:
        """A JSONPath payload template (``Parameters``, ``ResultSelector``, ``Assign``...)."""
        value = self.raw.get(key, MISSING)
        if value is MISSING:
            return MISSING
        if objects_only and not isinstance(value, dict):
            self.wrong_type(key, "an object")
            return MISSING
        check_template(self.report, value, self.at(key))
        return value

    def jsonata(self, key: str) -> Any:
        """A JSONata-state value: any JSON, whose ``{% %}`` strings must parse."""
        value = self.raw.get(key, MISSING)
        if value is MISSING:
            return MISSING
        check_jsonata_value(self.report, value, self.at(key))
        return value


def value_is_path_or_call(text: str) -> bool:
    if syntax.is_intrinsic_call(text):
        return syntax.intrinsic_error(text) is None
    return syntax.path_error(text) is None


def check_template(report: Report, value: Json, pointer: str) -> None:
    """Check a payload template: every ``"x.$"`` key holds a path or an intrinsic call.

    Iterative, so a deeply nested template cannot exhaust the stack.
    """
    stack: list[tuple[Json, str]] = [(value, pointer)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            plain = {k for k in node if not k.endswith(".$")}
            for key, item in node.items():
                if key.endswith(".$"):
                    if key[:-2] in plain:
                        report.error(at, f"The field '{key[:-2]}' is defined twice (as '{key}')")
                    if not isinstance(item, str) or not value_is_path_or_call(item):
                        report.error(
                            at,
                            f"The value for the field '{key}' must be a valid JSONPath "
                            "or a valid intrinsic function call",
                        )
                else:
                    stack.append((item, child(at, key)))
        elif isinstance(node, list):
            stack.extend((item, child(at, i)) for i, item in enumerate(node))


def check_jsonata_value(report: Report, value: Json, pointer: str) -> None:
    """Check every ``{% %}`` string inside a JSONata-state value parses as JSONata."""
    stack: list[tuple[Json, str]] = [(value, pointer)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, str):
            problem = syntax.jsonata_error(node)
            if problem:
                report.error(at, problem)
        elif isinstance(node, dict):
            stack.extend((item, child(at, key)) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, child(at, i)) for i, item in enumerate(node))
