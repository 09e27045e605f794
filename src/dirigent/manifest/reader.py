"""Read values out of a composed YAML node tree, collecting located problems.

The loader walks the manifest with a :class:`Reader`: every read names the
dotted path it is at, and a value that does not fit records a
:class:`Problem` (file, line, path, what was expected) and hands back
``None`` so the walk goes on and every mistake is reported at once.

This module must never raise on a user's mistake (problems are collected, the
loader raises once at the end) and never read files or the environment.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dirigent.errors import ManifestError

_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a manifest: ``file:line: dotted.path: what was expected``."""

    source: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.source}:{self.line}: {where}{self.message}"


class InvalidManifest(ManifestError):
    """A manifest with one or more problems; nothing of it was loaded.

    ``problems`` lists every mistake in file order; the message shows them all,
    one a line.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line, p.path)))
        super().__init__("\n".join(str(p) for p in self.problems))


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


@dataclass(frozen=True, slots=True)
class Fields:
    """The keys of one mapping, after duplicate and unknown keys were reported."""

    path: str
    line: int
    nodes: dict[str, Node]

    def get(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def at(self, name: str) -> str:
        return join(self.path, name)


class Reader:
    """Typed reads of YAML nodes; each failed read records a problem and returns None."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        # A constructor turns scalars into Python values with YAML 1.1's rules
        # (ints, floats, booleans, null) exactly as yaml.safe_load would.
        self._constructor = yaml.SafeLoader("")
        # The line of the key that owns each value node, so a missing key is
        # reported on its parent's line ("db:"), not on a sibling's.
        self._owner_lines: dict[int, int] = {}

    def error(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, path, message))

    def fields(self, node: Node, path: str, allowed: Collection[str] | None) -> Fields | None:
        """The mapping at ``node``; unknown keys (when ``allowed`` is given) are reported."""
        if not isinstance(node, MappingNode):
            self.error(line_of(node), path, "expected a mapping")
            return None
        nodes: dict[str, Node] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR_TAG):
                self.error(line_of(key_node), path, "keys must be strings")
                continue
            key = str(key_node.value)
            if key in nodes:
                self.error(
                    line_of(key_node),
                    join(path, key),
                    f"duplicate key (first given on line {first_line[key]})",
                )
            elif allowed is not None and key not in allowed:
                self.error(line_of(key_node), join(path, key), unknown_key_message(key, allowed))
            else:
                nodes[key] = value_node
                first_line[key] = line_of(key_node)
                self._owner_lines[id(value_node)] = line_of(key_node)
        return Fields(path, self.owner_line(node), nodes)

    def owner_line(self, node: Node) -> int:
        """The line of the key ``node`` is the value of (of ``node`` itself for the root)."""
        return self._owner_lines.get(id(node), line_of(node))

    def items(self, node: Node, path: str) -> list[tuple[str, Node]] | None:
        """The elements of a sequence, each with its ``path[i]``."""
        if not isinstance(node, SequenceNode):
            self.error(line_of(node), path, "expected a list")
            return None
        return [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]

    def scalar(self, node: Node) -> object:
        """The Python value of a scalar node, or the node itself if it is not one."""
        if not isinstance(node, ScalarNode):
            return node
        return self._constructor.construct_object(node)

    def string(self, node: Node, path: str, *, nonempty: bool = True) -> str | None:
        value = self.scalar(node)
        if not isinstance(value, str) or (nonempty and not value.strip()):
            self.error(line_of(node), path, "expected a non-empty string")
            return None
        return value

    def env_value(self, node: Node, path: str) -> str | None:
        """An environment value: strings, numbers and booleans become their text."""
        value = self.scalar(node)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        self.error(line_of(node), path, "expected a string, number or boolean")
        return None

    def integer(self, node: Node, path: str, *, minimum: int) -> int | None:
        value = self.scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(line_of(node), path, f"expected an integer >= {minimum}")
            return None
        return value

    def number(self, node: Node, path: str, *, positive: bool) -> float | None:
        """Seconds and other quantities; ``positive`` asks for > 0, otherwise >= 0."""
        value = self.scalar(node)
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 if positive else value >= 0)
        )
        if not ok:
            self.error(line_of(node), path, f"expected a number {'>' if positive else '>='} 0")
            return None
        assert isinstance(value, int | float)
        return float(value)

    def choice(self, node: Node, path: str, options: tuple[str, ...]) -> str | None:
        value = self.scalar(node)
        if not isinstance(value, str) or value not in options:
            self.error(line_of(node), path, f"expected one of: {', '.join(options)}")
            return None
        return value


def unknown_key_message(key: str, allowed: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key{hint}; expected one of: {', '.join(sorted(allowed))}"
