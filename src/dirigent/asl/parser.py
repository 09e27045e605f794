"""Amazon States Language documents into :mod:`dirigent.asl.model` objects.

Its job: accept a definition (JSON text, UTF-8 bytes or an already-parsed
mapping), check it against every rule AWS enforces when a state machine is
created, and return a :class:`~dirigent.asl.model.StateMachine` whose
guarantees the model's docstring lists. When anything is wrong it raises one
:class:`~dirigent.errors.DefinitionError` listing *every* problem found, each
with the JSON pointer of the offending node and AWS's wording where AWS has one.

The work is split by area: :mod:`~dirigent.asl.jsonload` reads text strictly,
:mod:`~dirigent.asl.fields` reads typed fields, :mod:`~dirigent.asl.rules`
parses Retry/Catch/Choice rules and Resources, :mod:`~dirigent.asl.syntax`
checks the embedded languages; this module walks machines and states and checks
the graph (transitions, reachability, terminal states).

It must never do I/O, read a clock, or raise anything but ``DefinitionError``
for a bad document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dirigent.asl import rules, syntax
from dirigent.asl.fields import Fields, Report, child
from dirigent.asl.jsonload import check_depth, load_json_text
from dirigent.asl.jsontext import json_type_name as type_name
from dirigent.asl.mapstate import parse_map
from dirigent.asl.model import (
    JSONATA,
    JSONPATH,
    MISSING,
    ChoiceRule,
    ChoiceState,
    FailState,
    Json,
    ParallelState,
    PassState,
    QueryLanguage,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
)
from dirigent.errors import DefinitionError, Diagnostic

__all__ = ["StateMachineType", "parse_definition"]

StateMachineType = Literal["STANDARD", "EXPRESS"]

MAX_STATE_NAME = 80
STATE_TYPES = ("Task", "Wait", "Pass", "Succeed", "Fail", "Choice", "Parallel", "Map")
LANGUAGES: tuple[QueryLanguage, ...] = (JSONPATH, JSONATA)

_COMMON = ("Type", "Comment", "QueryLanguage")
_FLOW = ("Next", "End")
_IO = ("InputPath", "OutputPath", "Output", "Assign")
_RESULT = ("Parameters", "Arguments", "ResultSelector", "ResultPath", "Retry", "Catch")
_MAP = (
    "ItemProcessor",
    "Iterator",
    "ItemsPath",
    "Items",
    "ItemSelector",
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "Label",
)
_TASK = (
    "Resource",
    "TimeoutSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSeconds",
    "HeartbeatSecondsPath",
    "Credentials",
)
_WAIT = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")

#: The fields each state type accepts, in either query language.
STATE_FIELDS: dict[str, frozenset[str]] = {
    "Pass": frozenset((*_COMMON, *_FLOW, *_IO, "Parameters", "ResultPath", "Result")),
    "Task": frozenset((*_COMMON, *_FLOW, *_IO, *_RESULT, *_TASK)),
    "Choice": frozenset((*_COMMON, *_IO, "Choices", "Default")),
    "Wait": frozenset((*_COMMON, *_FLOW, *_IO, *_WAIT)),
    "Succeed": frozenset((*_COMMON, "InputPath", "OutputPath", "Output")),
    "Fail": frozenset((*_COMMON, "Error", "ErrorPath", "Cause", "CausePath")),
    "Parallel": frozenset((*_COMMON, *_FLOW, *_IO, *_RESULT, "Branches")),
    "Map": frozenset((*_COMMON, *_FLOW, *_IO, *_RESULT, *_MAP)) - {"Arguments"},
}

#: Fields that only make sense in one query language.
JSONPATH_ONLY = frozenset(
    (
        "InputPath",
        "OutputPath",
        "Parameters",
        "ResultPath",
        "ResultSelector",
        "Result",
        "ItemsPath",
        "TimeoutSecondsPath",
        "HeartbeatSecondsPath",
        "SecondsPath",
        "TimestampPath",
        "ErrorPath",
        "CausePath",
        "MaxConcurrencyPath",
        "ToleratedFailureCountPath",
        "ToleratedFailurePercentagePath",
    )
)
JSONATA_ONLY = frozenset(("Arguments", "Output", "Items"))


def parse_definition(
    source: str | bytes | Mapping[str, Any], *, machine_type: StateMachineType = "STANDARD"
) -> StateMachine:
    """Parse and validate an ASL document; raise ``DefinitionError`` listing every problem.

    ``machine_type`` matters because Express workflows refuse integrations that
    wait (``.sync``, ``.waitForTaskToken``).
    """
    # Typed as object so the last branch stays checked: callers outside the type
    # checker (the API layer decoding requests) can still pass anything.
    given: object = source
    if isinstance(given, str | bytes):
        raw = load_json_text(given)
    elif isinstance(given, Mapping):
        check_depth(given)
        raw = given
    else:
        message = f"A definition must be JSON text or a mapping, not {type(given).__name__}"
        raise DefinitionError([Diagnostic("", message)])
    if not isinstance(raw, Mapping):
        raise DefinitionError(
            [Diagnostic("", f"The definition must be a JSON object, not {type_name(raw)}")]
        )
    parser = _Parser(express=machine_type == "EXPRESS")
    machine = parser.machine(raw, "", JSONPATH, kind="top", express=parser.express)
    if parser.report.diagnostics or machine is None:
        raise DefinitionError(parser.report.diagnostics)
    return machine


@dataclass(slots=True)
class _Graph:
    """The transitions of one machine, collected while its states are parsed."""

    #: (source state, target name, pointer of the field naming the target)
    edges: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Site:
    """What a state-type builder works on: the state's fields and what is already known."""

    fields: Fields
    #: keyword arguments every state type shares (name, flow, I/O, assign)
    common: dict[str, Any]
    graph: _Graph
    express: bool


@dataclass(slots=True)
class _Parser:
    express: bool
    report: Report = field(default_factory=Report)
    #: the top-level ``QueryLanguage``; a JSONata machine may not hold JSONPath states
    top_language: QueryLanguage = JSONPATH
    #: state names seen anywhere in the document (they must be unique across it)
    names: set[str] = field(default_factory=set)

    # ----------------------------------------------------------------- machines

    def machine(
        self,
        raw: Mapping[str, Json],
        pointer: str,
        language: QueryLanguage,
        *,
        kind: Literal["top", "branch", "processor"],
        express: bool,
    ) -> StateMachine | None:
        fields = Fields(raw, pointer, self.report, language)
        allowed = ["StartAt", "States", "Comment"]
        if kind == "top":
            allowed += ["Version", "TimeoutSeconds", "QueryLanguage"]
        elif kind == "processor":
            allowed += ["ProcessorConfig"]
        missing = [k for k in ("States", "StartAt") if k not in raw]
        if missing:
            fields.error(None, f"These fields are required: [{', '.join(missing)}]")
        fields.only(allowed)
        if kind == "top":
            own = fields.choice("QueryLanguage", LANGUAGES)
            language = self.top_language = JSONPATH if own is MISSING else own
        comment = fields.string("Comment")
        version = fields.string("Version")
        timeout = fields.integer("TimeoutSeconds", minimum=1) if kind == "top" else MISSING
        start_at = fields.string("StartAt", nonempty=True)

        states_raw = raw.get("States", MISSING)
        states: dict[str, State] = {}
        graph = _Graph()
        if states_raw is not MISSING:
            if not isinstance(states_raw, Mapping) or not states_raw:
                fields.error(
                    "States", "The field 'States' must be an object with at least one state"
                )
            else:
                states_at = fields.at("States")
                for name, state_raw in states_raw.items():
                    state = self.state(
                        name,
                        state_raw,
                        child(states_at, name),
                        inherited=language,
                        graph=graph,
                        express=express,
                    )
                    if state is not None:
                        states[name] = state
        if isinstance(start_at, str) and isinstance(states_raw, Mapping) and states_raw:
            self.check_graph(fields, start_at, states_raw, states, graph)
        if start_at is MISSING or not isinstance(states_raw, Mapping):
            return None
        return StateMachine(
            start_at=start_at,
            states=states,
            query_language=language,
            comment=None if comment is MISSING else comment,
            version=None if version is MISSING else version,
            timeout_seconds=None if timeout is MISSING else timeout,
            source=raw,
        )

    def check_graph(
        self,
        fields: Fields,
        start_at: str,
        states_raw: Mapping[str, Json],
        states: Mapping[str, State],
        graph: _Graph,
    ) -> None:
        if start_at not in states_raw:
            fields.error("StartAt", f"Missing 'StartAt' target: {start_at}")
            return
        targets: dict[str, list[str]] = {}
        dangling = False
        for source, target, at in graph.edges:
            if target in states_raw:
                targets.setdefault(source, []).append(target)
            else:
                dangling = True
                self.report.error(at, f"Missing 'Next' target: {target}")
        reached = {start_at}
        frontier = [start_at]
        while frontier:
            for target in targets.get(frontier.pop(), ()):
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
        states_at = fields.at("States")
        for name in states_raw:
            if name not in reached:
                self.report.error(child(states_at, name), f'State "{name}" is not reachable.')
        terminal = any(
            isinstance(s, SucceedState | FailState) or s.end
            for name, s in states.items()
            if name in reached
        )
        # Only judged on a whole graph: a dangling Next or a state that failed
        # to parse may be exactly where the machine was meant to end.
        if not terminal and not dangling and len(states) == len(states_raw):
            fields.error("States", "No terminal state: no state ends the execution")

    # ----------------------------------------------------------------- states

    def state(
        self,
        name: str,
        raw: Json,
        pointer: str,
        *,
        inherited: QueryLanguage,
        graph: _Graph,
        express: bool,
    ) -> State | None:
        if not name or len(name) > MAX_STATE_NAME:
            self.report.error(pointer, f"State names must be 1 to {MAX_STATE_NAME} characters long")
        if name in self.names:
            self.report.error(pointer, f"Duplicate state name: {name}")
        self.names.add(name)
        if not isinstance(raw, Mapping):
            self.report.error(pointer, f"A state must be an object, not {type_name(raw)}")
            return None
        fields = Fields(raw, pointer, self.report, inherited)
        if not fields.require("Type"):
            return None
        kind = fields.choice("Type", STATE_TYPES)
        if kind is MISSING:
            return None
        own = fields.choice("QueryLanguage", LANGUAGES)
        if own == JSONPATH and self.top_language == JSONATA:
            fields.error(
                None,
                "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
            )
        language: QueryLanguage = inherited if own is MISSING else own
        fields.language = language
        self.check_field_names(fields, kind)

        common: dict[str, Any] = {"name": name, "query_language": language}
        comment = fields.string("Comment")
        if comment is not MISSING:
            common["comment"] = comment
        if kind not in ("Choice", "Succeed", "Fail"):
            common.update(self.flow(fields, name, graph))
        if language == JSONPATH:
            common["input_path"] = fields.path("InputPath", nullable=True)
            common["output_path"] = fields.path("OutputPath", nullable=True)
        else:
            common["output"] = fields.jsonata("Output")
        if kind not in ("Succeed", "Fail"):
            common["assign"] = self.assign(fields)

        build = getattr(self, f"_{kind.lower()}")
        result: State | None = build(_Site(fields, common, graph, express))
        return result

    def check_field_names(self, fields: Fields, kind: str) -> None:
        allowed = STATE_FIELDS[kind]
        for key in fields.raw:
            if key not in allowed:
                fields.error(key, f'The field "{key}" is not supported by Step Functions')
            elif fields.language == JSONATA and key in JSONPATH_ONLY:
                fields.error(
                    key, f'The field "{key}" is not supported when QueryLanguage is JSONata'
                )
            elif fields.language == JSONPATH and key in JSONATA_ONLY:
                fields.error(
                    key, f'The field "{key}" is not supported when QueryLanguage is JSONPath'
                )

    def flow(self, fields: Fields, name: str, graph: _Graph) -> dict[str, Any]:
        target = fields.string("Next", nonempty=True)
        end = fields.boolean("End")
        if "Next" in fields.raw and "End" in fields.raw:
            fields.error("End", "Only one of 'Next' or 'End' may be set")
        elif "Next" not in fields.raw and end is not True and "End" not in fields.raw:
            fields.error(None, "Either 'Next' or 'End' is required")
        elif "Next" not in fields.raw and end is False:
            fields.error("End", "'End' must be true when there is no 'Next'")
        if isinstance(target, str):
            graph.edges.append((name, target, fields.at("Next")))
            return {"next": target}
        return {"end": end is True}

    def assign(self, fields: Fields) -> Json:
        if fields.language == JSONPATH:
            value = fields.template("Assign", objects_only=True)
        else:
            value = fields.jsonata("Assign")
            if value is not MISSING and not isinstance(value, dict):
                fields.wrong_type("Assign", "an object")
        rules.check_variable_names(fields, value)
        return value

    def payload(self, fields: Fields) -> dict[str, Any]:
        """``Parameters`` (JSONPath template) or ``Arguments`` (JSONata) of a state."""
        if fields.language == JSONPATH:
            return {"parameters": fields.template("Parameters")}
        value = fields.jsonata("Arguments")
        if value is not MISSING and not (
            isinstance(value, dict) or syntax.is_jsonata_expression(value)
        ):
            fields.wrong_type("Arguments", "an object or a JSONata expression")
        return {"arguments": value}

    def results(self, fields: Fields, graph: _Graph, name: str) -> dict[str, Any]:
        """``ResultSelector``, ``ResultPath``, ``Retry`` and ``Catch``."""
        found: dict[str, Any] = {}
        if fields.language == JSONPATH:
            found["result_selector"] = fields.template("ResultSelector", objects_only=True)
            found["result_path"] = self.result_path(fields)
        if "Retry" in fields.raw:
            found["retry"] = rules.parse_retry(
                self.report, fields.raw["Retry"], fields.at("Retry"), fields.language
            )
        if "Catch" in fields.raw:
            catchers = rules.parse_catch(
                self.report, fields.raw["Catch"], fields.at("Catch"), fields.language
            )
            catch_at = fields.at("Catch")
            for index, catcher in enumerate(catchers):
                if catcher.next:
                    graph.edges.append((name, catcher.next, child(child(catch_at, index), "Next")))
            found["catch"] = catchers
        return found

    def result_path(self, fields: Fields) -> Json:
        return fields.path(
            "ResultPath", reference=True, nullable=True, context=False, variables=False
        )

    # ----------------------------------------------------------------- state types

    def _pass(self, site: _Site) -> State:
        fields, common = site.fields, site.common
        extra: dict[str, Any] = {}
        if fields.language == JSONPATH:
            extra = {
                "result": fields.raw.get("Result", MISSING),
                "parameters": fields.template("Parameters"),
                "result_path": self.result_path(fields),
            }
        return PassState(**common, **extra)

    def _succeed(self, site: _Site) -> State:
        common = site.common
        return SucceedState(**common)

    def _task(self, site: _Site) -> State | None:
        fields, common, graph, express = site.fields, site.common, site.graph, site.express
        fields.require("Resource")
        resource = fields.string("Resource", nonempty=True)
        if isinstance(resource, str):
            problem = rules.resource_error(resource)
            if problem is None and express:
                problem = rules.express_resource_error(resource)
            if problem:
                fields.error("Resource", problem)
        timing = self.task_timing(fields)
        credentials = self.credentials(fields)
        found = self.results(fields, graph, common["name"])
        if not isinstance(resource, str):
            return None
        return TaskState(
            **common,
            **self.payload(fields),
            **found,
            **timing,
            resource=resource,
            credentials=credentials,
        )

    def task_timing(self, fields: Fields) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in ("TimeoutSeconds", "HeartbeatSeconds"):
            fields.exclusive(name, f"{name}Path")
            key = "timeout_seconds" if name == "TimeoutSeconds" else "heartbeat_seconds"
            found[key] = fields.integer(name, minimum=1, expression=True)
            path = fields.path(f"{name}Path", reference=True)
            found[f"{key}_path"] = None if path is MISSING else path
        timeout, heartbeat = found["timeout_seconds"], found["heartbeat_seconds"]
        if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
            fields.error("HeartbeatSeconds", "HeartbeatSeconds must be less than TimeoutSeconds")
        return found

    def credentials(self, fields: Fields) -> Json:
        value = fields.raw.get("Credentials", MISSING)
        if value is MISSING:
            return MISSING
        if not isinstance(value, Mapping):
            if fields.language == JSONATA and syntax.is_jsonata_expression(value):
                return fields.jsonata("Credentials")
            fields.wrong_type("Credentials", "an object")
            return MISSING
        inner = Fields(value, fields.at("Credentials"), self.report, fields.language)
        if "RoleArn" not in value and "RoleArn.$" not in value:
            inner.error(None, "The field 'RoleArn' is required but was missing")
        allowed = ("RoleArn", "RoleArn.$") if fields.language == JSONPATH else ("RoleArn",)
        inner.only(allowed)
        if fields.language == JSONPATH:
            return fields.template("Credentials")
        return fields.jsonata("Credentials")

    def _choice(self, site: _Site) -> State | None:
        fields, common, graph = site.fields, site.common, site.graph
        name = common["name"]
        for key in ("Next", "End"):
            if key in fields.raw:
                fields.error(key, f'The field "{key}" is not supported by Step Functions')
        choices: list[ChoiceRule] = []
        raw = fields.raw.get("Choices", MISSING)
        if "Choices" not in fields.raw:
            fields.require("Choices")
        elif not isinstance(raw, list) or not raw:
            fields.error("Choices", "The field 'Choices' must be a non-empty array of rules")
        else:
            for index, entry in enumerate(raw):
                at = child(fields.at("Choices"), index)
                rule = rules.parse_choice_rule(self.report, entry, at, fields.language)
                if rule is not None:
                    choices.append(rule)
                    graph.edges.append((name, rule.next, child(at, "Next")))
        default = fields.string("Default", nonempty=True)
        if isinstance(default, str):
            graph.edges.append((name, default, fields.at("Default")))
        if not choices:
            return None
        return ChoiceState(**common, choices=tuple(choices), default=default or None)

    def _wait(self, site: _Site) -> State:
        fields, common = site.fields, site.common
        present = [k for k in _WAIT if k in fields.raw]
        if len(present) != 1:
            fields.error(
                present[-1] if present else None,
                "A Wait state must have exactly one of 'Seconds', 'SecondsPath', "
                "'Timestamp' or 'TimestampPath'",
            )
        timestamp = fields.raw.get("Timestamp", MISSING)
        if fields.language == JSONATA and syntax.is_jsonata_expression(timestamp):
            timestamp = fields.jsonata("Timestamp")
        else:
            timestamp = fields.string("Timestamp")
            if isinstance(timestamp, str):
                problem = syntax.timestamp_error(timestamp)
                if problem:
                    fields.error("Timestamp", problem)
        seconds_path = fields.path("SecondsPath", reference=True)
        timestamp_path = fields.path("TimestampPath", reference=True)
        return WaitState(
            **common,
            seconds=fields.integer("Seconds", minimum=0, expression=True),
            seconds_path=None if seconds_path is MISSING else seconds_path,
            timestamp=timestamp,
            timestamp_path=None if timestamp_path is MISSING else timestamp_path,
        )

    def _fail(self, site: _Site) -> State:
        fields, common = site.fields, site.common
        found: dict[str, Any] = {}
        for name in ("Error", "Cause"):
            fields.exclusive(name, f"{name}Path")
            value = fields.raw.get(name, MISSING)
            key = name.lower()
            if fields.language == JSONATA and syntax.is_jsonata_expression(value):
                found[key] = fields.jsonata(name)
            else:
                found[key] = fields.string(name)
            path = fields.path_or_intrinsic(f"{name}Path")
            found[f"{key}_path"] = None if path is MISSING else path
        return FailState(**common, **found)

    def _parallel(self, site: _Site) -> State | None:
        fields, common, graph, express = site.fields, site.common, site.graph, site.express
        branches: list[StateMachine] = []
        raw = fields.raw.get("Branches", MISSING)
        valid = True
        if not fields.require("Branches"):
            valid = False
        elif not isinstance(raw, list) or not raw:
            fields.error("Branches", "The field 'Branches' must be a non-empty array")
            valid = False
        else:
            for index, entry in enumerate(raw):
                at = child(fields.at("Branches"), index)
                if not isinstance(entry, Mapping):
                    self.report.error(at, f"A branch must be an object, not {type_name(entry)}")
                    valid = False
                    continue
                branch = self.machine(entry, at, fields.language, kind="branch", express=express)
                if branch is None:
                    valid = False
                else:
                    branches.append(branch)
        found = self.results(fields, graph, common["name"])
        payload = self.payload(fields)
        if not valid:
            return None
        return ParallelState(**common, **payload, **found, branches=tuple(branches))

    def _map(self, site: _Site) -> State | None:
        fields, common, graph, express = site.fields, site.common, site.graph, site.express
        found = self.results(fields, graph, common["name"])

        def processor(
            raw: Mapping[str, Json], pointer: str, child_express: bool
        ) -> StateMachine | None:
            return self.machine(
                raw, pointer, fields.language, kind="processor", express=child_express
            )

        return parse_map(fields, {**common, **found}, express, processor)
