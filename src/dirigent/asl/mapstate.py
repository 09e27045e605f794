"""The Map state's own fields: processor, items, concurrency, tolerance, reader, writer.

Its job: read and check everything specific to a Map state, inline or
distributed — ``ItemProcessor`` (or the legacy ``Iterator``) with its
``ProcessorConfig``, ``ItemsPath``/``Items``, ``ItemSelector`` (or the legacy
``Parameters``), ``MaxConcurrency``, ``ToleratedFailure*``, ``Label``,
``ItemReader``, ``ItemBatcher`` and ``ResultWriter`` — and build the
:class:`~dirigent.asl.model.MapState`. The item processor itself is parsed by
the caller's ``processor`` callback, so this module never walks states.

It must never raise for bad input; problems go to the :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dirigent.asl import rules, syntax
from dirigent.asl.fields import MAX_INTEGER, Fields
from dirigent.asl.jsontext import json_type_name as type_name
from dirigent.asl.model import JSONATA, JSONPATH, MISSING, Json, MapState, State, StateMachine

Processor = Callable[[Mapping[str, Json], str, bool], StateMachine | None]

MAX_LABEL = 40
# Besides control characters, the characters AWS does not allow in a Map Label.
_LABEL_FORBIDDEN = frozenset(' \t\n\r<>{}[]?*"#%\\^|~`$&,;:/')

_READER_CONFIG = (
    "InputType",
    "CSVHeaderLocation",
    "CSVHeaders",
    "CSVDelimiter",
    "MaxItems",
    "MaxItemsPath",
    "ManifestType",
)


def parse_map(
    fields: Fields, common: dict[str, Any], express: bool, processor: Processor
) -> State | None:
    fields.exclusive("ItemProcessor", "Iterator")
    key = "Iterator" if "Iterator" in fields.raw else "ItemProcessor"
    if "ItemProcessor" not in fields.raw and "Iterator" not in fields.raw:
        fields.error(None, "The field 'ItemProcessor' is required but was missing")
    raw = fields.raw.get(key, MISSING)
    mode, execution_type = "INLINE", None
    item_processor: StateMachine | None = None
    if raw is not MISSING:
        if not isinstance(raw, Mapping):
            fields.wrong_type(key, "an object")
        else:
            mode, execution_type = _processor_config(fields, raw, key)
            child_express = express or execution_type == "EXPRESS"
            item_processor = processor(raw, fields.at(key), child_express)

    distributed = mode == "DISTRIBUTED"
    found: dict[str, Any] = {}
    if fields.language == JSONPATH:
        fields.exclusive("ItemSelector", "Parameters")
        found["items_path"] = fields.path("ItemsPath", reference=True)
        found["item_selector"] = fields.template("ItemSelector", objects_only=True)
        found["parameters"] = fields.template("Parameters", objects_only=True)
    else:
        items = fields.jsonata("Items")
        if items is not MISSING and not (
            isinstance(items, list) or syntax.is_jsonata_expression(items)
        ):
            fields.wrong_type("Items", "an array or a JSONata expression")
        found["items"] = items
        found["item_selector"] = fields.jsonata("ItemSelector")

    for name, key_name, lowest, highest, integral in (
        ("MaxConcurrency", "max_concurrency", 0, MAX_INTEGER, True),
        ("ToleratedFailureCount", "tolerated_failure_count", 0, MAX_INTEGER, True),
        ("ToleratedFailurePercentage", "tolerated_failure_percentage", 0, 100, False),
    ):
        fields.exclusive(name, f"{name}Path")
        if integral:
            found[key_name] = fields.integer(name, minimum=lowest, maximum=highest, expression=True)
        else:
            found[key_name] = fields.number(name, minimum=lowest, maximum=highest, expression=True)
        path = fields.path(f"{name}Path", reference=True)
        found[f"{key_name}_path"] = None if path is MISSING else path

    label = fields.string("Label")
    if isinstance(label, str):
        problem = label_error(label)
        if problem:
            fields.error("Label", problem)

    # ItemReader/ItemBatcher/ResultWriter are documented for DISTRIBUTED maps,
    # but definitions without a ProcessorConfig use them and are accepted, so
    # the mode is not enforced here.
    found["item_reader"] = _item_reader(fields)
    found["item_batcher"] = _item_batcher(fields)
    found["result_writer"] = _result_writer(fields)

    if item_processor is None:
        return None
    return MapState(
        **common,
        **found,
        item_processor=item_processor,
        mode="DISTRIBUTED" if distributed else "INLINE",
        execution_type=execution_type,
        label=None if label is MISSING else label,
    )


def label_error(label: str) -> str | None:
    """Why a Map ``Label`` is refused (AWS names child executions after it), or ``None``."""
    if not label:
        return "Label cannot be empty"
    if len(label) > MAX_LABEL:
        return f"Label cannot exceed {MAX_LABEL} characters"
    for char in label:
        if char in _LABEL_FORBIDDEN or ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            return f"Label contains invalid character: {char!r}"
    return None


def _processor_config(fields: Fields, raw: Mapping[str, Json], key: str) -> tuple[str, str | None]:
    config = raw.get("ProcessorConfig", MISSING)
    if config is MISSING:
        return "INLINE", None
    at = f"{fields.at(key)}/ProcessorConfig"
    if not isinstance(config, Mapping):
        fields.report.error(
            at, f"The field 'ProcessorConfig' must be an object, not {type_name(config)}"
        )
        return "INLINE", None
    inner = Fields(config, at, fields.report, fields.language)
    inner.only(("Mode", "ExecutionType"))
    mode = inner.choice("Mode", ("INLINE", "DISTRIBUTED"))
    execution_type = inner.choice("ExecutionType", ("STANDARD", "EXPRESS"))
    if mode == "DISTRIBUTED" and "ExecutionType" not in config:
        inner.error(None, "The field 'ExecutionType' is required but was missing")
    if mode != "DISTRIBUTED" and "ExecutionType" in config:
        inner.error("ExecutionType", "'ExecutionType' is only allowed when Mode is DISTRIBUTED")
    return (
        "DISTRIBUTED" if mode == "DISTRIBUTED" else "INLINE",
        execution_type if isinstance(execution_type, str) else None,
    )


def _sub_object(fields: Fields, name: str) -> Fields | None:
    raw = fields.raw.get(name, MISSING)
    if raw is MISSING:
        return None
    if not isinstance(raw, Mapping):
        fields.wrong_type(name, "an object")
        return None
    return Fields(raw, fields.at(name), fields.report, fields.language)


def _payload_fields(inner: Fields) -> None:
    if inner.language == JSONPATH:
        inner.template("Parameters", objects_only=True)
    else:
        inner.jsonata("Arguments")


def _item_reader(fields: Fields) -> Json:
    inner = _sub_object(fields, "ItemReader")
    if inner is None:
        return MISSING
    payload = "Parameters" if inner.language == JSONPATH else "Arguments"
    inner.only(("Resource", "ReaderConfig", payload))
    inner.require("Resource")
    _resource(inner)
    _payload_fields(inner)
    config = _sub_object(inner, "ReaderConfig")
    if config is not None:
        config.only(_READER_CONFIG)
        config.exclusive("MaxItems", "MaxItemsPath")
        config.integer("MaxItems", minimum=1, expression=True)
        if inner.language == JSONATA and "MaxItemsPath" in config.raw:
            config.error(
                "MaxItemsPath",
                'The field "MaxItemsPath" is not supported when QueryLanguage is JSONata',
            )
        config.path("MaxItemsPath", reference=True)
    return fields.raw["ItemReader"]


def _item_batcher(fields: Fields) -> Json:
    inner = _sub_object(fields, "ItemBatcher")
    if inner is None:
        return MISSING
    pairs = ("MaxItemsPerBatch", "MaxInputBytesPerBatch")
    inner.only((*pairs, *(f"{p}Path" for p in pairs), "BatchInput"))
    for name in pairs:
        inner.exclusive(name, f"{name}Path")
        inner.integer(
            name, minimum=1, maximum=262_144 if "Bytes" in name else MAX_INTEGER, expression=True
        )
        inner.path(f"{name}Path", reference=True)
    if inner.language == JSONPATH:
        inner.template("BatchInput", objects_only=True)
    else:
        inner.jsonata("BatchInput")
    return fields.raw["ItemBatcher"]


def _result_writer(fields: Fields) -> Json:
    inner = _sub_object(fields, "ResultWriter")
    if inner is None:
        return MISSING
    payload = "Parameters" if inner.language == JSONPATH else "Arguments"
    inner.only(("Resource", "WriterConfig", payload))
    if "Resource" in inner.raw:
        _resource(inner)
    _payload_fields(inner)
    config = _sub_object(inner, "WriterConfig")
    if config is not None:
        config.only(("OutputType", "Transformation"))
    return fields.raw["ResultWriter"]


def _resource(inner: Fields) -> None:
    resource = inner.string("Resource", nonempty=True)
    if isinstance(resource, str):
        problem = rules.resource_error(resource)
        if problem:
            inner.error("Resource", problem)
