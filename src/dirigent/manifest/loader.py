"""Load ``dirigent.yaml`` into a :class:`~dirigent.manifest.model.Manifest`.

Every mistake is reported with the file, the line and the dotted path of the
offending value (``dirigent.yaml:14: services.payments.probes.liveness.period:
expected a number > 0``); all of them are collected and raised together as one
:class:`~dirigent.manifest.reader.InvalidManifest`, so one bad field loads
nothing. The service section lives in :mod:`dirigent.manifest.services`.

Extension point: top-level sections other than ``app``, ``services``,
``workflows`` and ``functions`` are unknown keys unless a parser for them is
passed in ``sections`` (the mesh will add its routing and security sections
that way); each parser reads its node with the same :class:`Reader`, so its
errors are located the same way, and its result lands in
``Manifest.extensions``.

This module must never touch the environment, spawn anything or start a
service: loading is all-or-nothing validation of a document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

import yaml
from yaml.nodes import Node

from dirigent.manifest.model import FunctionRef, Manifest, Service
from dirigent.manifest.reader import InvalidManifest, Problem, Reader, line_of
from dirigent.manifest.services import check_dependencies, check_ports, read_service

#: parses one extension section; returns its model (or None after recording problems)
SectionParser = Callable[[Reader, Node, str], object]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_CORE_SECTIONS = ("app", "services", "workflows", "functions")


def load_manifest(
    path: str, *, sections: Mapping[str, SectionParser] = MappingProxyType({})
) -> Manifest:
    """Read and load the manifest at ``path``; raise InvalidManifest listing every mistake."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise InvalidManifest([Problem(path, 1, "", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise InvalidManifest([Problem(path, 1, "", "not UTF-8 text")]) from exc
    return parse_manifest(text, source=path, sections=sections)


def parse_manifest(
    text: str,
    *,
    source: str = "dirigent.yaml",
    sections: Mapping[str, SectionParser] = MappingProxyType({}),
) -> Manifest:
    """Load a manifest from its text; ``source`` names it in messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise InvalidManifest([Problem(source, line, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InvalidManifest([Problem(source, 1, "", f"invalid YAML: {exc}")]) from exc
    if root is None:
        raise InvalidManifest([Problem(source, 1, "", "empty manifest; expected at least 'app'")])

    reader = Reader(source)
    manifest = _read_manifest(reader, root, source, sections)
    if reader.problems or manifest is None:
        raise InvalidManifest(reader.problems)
    return manifest


def _read_manifest(
    reader: Reader, root: Node, source: str, sections: Mapping[str, SectionParser]
) -> Manifest | None:
    clash = set(sections) & set(_CORE_SECTIONS)
    if clash:
        # A programming error in whoever wires extensions, not a user's mistake.
        raise ValueError(f"extension sections may not replace core ones: {sorted(clash)}")
    fields = reader.fields(root, "", (*_CORE_SECTIONS, *sections))
    if fields is None:
        return None

    app = None
    app_node = fields.get("app")
    if app_node is None:
        reader.error(fields.line, "app", "required key is missing")
    else:
        app = _name(reader, app_node, "app")

    services: dict[str, Service] = {}
    services_node = fields.get("services")
    if services_node is not None:
        service_fields = reader.fields(services_node, "services", None)
        if service_fields is not None:
            for name, node in service_fields.nodes.items():
                path = service_fields.at(name)
                if not _NAME.match(name):
                    reader.error(reader.owner_line(node), path, _NAME_MESSAGE)
                service = read_service(reader, node, path, name)
                if service is not None:
                    services[name] = service
            check_dependencies(reader, service_fields, services)
            check_ports(reader, service_fields, services)

    workflows: list[str] = []
    workflows_node = fields.get("workflows")
    if workflows_node is not None:
        for path, item in reader.items(workflows_node, "workflows") or ():
            value = reader.string(item, path)
            if value is not None:
                workflows.append(value)

    functions: dict[str, FunctionRef] = {}
    functions_node = fields.get("functions")
    if functions_node is not None:
        function_fields = reader.fields(functions_node, "functions", None)
        for name, node in function_fields.nodes.items() if function_fields else ():
            ref = _function(reader, node, function_fields.at(name)) if function_fields else None
            if ref is not None:
                functions[name] = ref

    extensions: dict[str, object] = {}
    for key, parse in sections.items():
        section_node = fields.get(key)
        if section_node is not None:
            extensions[key] = parse(reader, section_node, key)

    if app is None:
        return None
    return Manifest(
        app=app,
        services=MappingProxyType(services),
        workflows=tuple(workflows),
        functions=MappingProxyType(functions),
        source=source,
        extensions=MappingProxyType(extensions),
    )


_NAME_MESSAGE = "expected a lowercase name of letters, digits and '-' (a DNS label)"


def _name(reader: Reader, node: Node, path: str) -> str | None:
    value = reader.scalar(node)
    if not isinstance(value, str) or not _NAME.match(value):
        reader.error(reader.owner_line(node), path, _NAME_MESSAGE)
        return None
    return value


def _function(reader: Reader, node: Node, path: str) -> FunctionRef | None:
    value = reader.scalar(node)
    if not isinstance(value, str) or not _FUNCTION.match(value):
        reader.error(line_of(node), path, "expected 'module:function', e.g. 'shop.tasks:charge'")
        return None
    module, function = value.split(":")
    return FunctionRef(module, function)
