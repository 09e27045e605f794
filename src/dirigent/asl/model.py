"""The parsed form of a state machine: frozen dataclasses, nothing else.

The parser (:mod:`dirigent.asl.parser`) is the only producer of these objects,
and it guarantees what the types cannot say: every ``next`` names a state of the
same machine, exactly one of ``next``/``end`` is set where ASL requires one, a
field only appears in the query language that allows it.

JSON-valued fields that are evaluated at run time (``Parameters``, ``Arguments``,
``Output``, ``Assign``, ``Result``...) are kept as the raw JSON value; the data
flow modules interpret them. ``query_language`` on every state is the effective
one (the state's own, else the machine's, else JSONPath), so the core never has
to look it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Json: TypeAlias = Any
QueryLanguage: TypeAlias = Literal["JSONPath", "JSONata"]

JSONPATH: QueryLanguage = "JSONPath"
JSONATA: QueryLanguage = "JSONata"


class _Missing:
    """Marks a JSON field that is absent, as opposed to present and ``null``."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        # One instance, so ``is MISSING`` works; it holds no state.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrier:
    error_equals: tuple[str, ...]
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None
    jitter_strategy: Literal["FULL", "NONE"] = "NONE"
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Catcher:
    error_equals: tuple[str, ...]
    next: str
    #: JSONPath only; ``MISSING`` means the default ``$``, ``None`` means discard.
    result_path: str | Any | None = MISSING
    #: JSONata only: the ``Output`` template, ``MISSING`` when absent.
    output: Json = MISSING
    assign: Json = MISSING
    comment: str | None = None


# --------------------------------------------------------------------------- choice rules


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A data-test expression: ``Variable`` compared with ``operator``.

    ``operator`` is ASL's name without the ``Path`` suffix (``StringEquals``,
    ``IsPresent``...); ``by_path`` says the operand is a path into the input.
    """

    variable: str
    operator: str
    operand: Json
    by_path: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class And:
    rules: tuple[Condition, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Or:
    rules: tuple[Condition, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    rule: Condition


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonataCondition:
    """A JSONata Choice rule: ``Condition`` is ``true``/``false`` or a ``{% %}`` string."""

    condition: Json


Condition: TypeAlias = Comparison | And | Or | Not | JsonataCondition


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceRule:
    condition: Condition
    next: str
    assign: Json = MISSING
    output: Json = MISSING
    comment: str | None = None


# --------------------------------------------------------------------------- states


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """Fields every state type may carry; subclasses add their own."""

    name: str
    query_language: QueryLanguage = JSONPATH
    comment: str | None = None
    next: str | None = None
    end: bool = False
    #: JSONPath only; ``MISSING`` means ``$``, ``None`` means the empty object.
    input_path: str | Any | None = MISSING
    output_path: str | Any | None = MISSING
    #: JSONata only.
    output: Json = MISSING
    assign: Json = MISSING

    @property
    def type(self) -> str:
        return type(self).__name__.removesuffix("State")


@dataclass(frozen=True, slots=True, kw_only=True)
class PassState(State):
    result: Json = MISSING
    result_path: str | Any | None = MISSING
    parameters: Json = MISSING


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState(State):
    resource: str
    parameters: Json = MISSING
    arguments: Json = MISSING
    result_selector: Json = MISSING
    result_path: str | Any | None = MISSING
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    #: an int, a JSONata ``{% %}`` string, or ``MISSING``
    timeout_seconds: Json = MISSING
    timeout_seconds_path: str | None = None
    heartbeat_seconds: Json = MISSING
    heartbeat_seconds_path: str | None = None
    credentials: Json = MISSING


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceState(State):
    choices: tuple[ChoiceRule, ...]
    default: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitState(State):
    #: an int, or in JSONata a ``{% %}`` string
    seconds: Json = MISSING
    seconds_path: str | None = None
    #: an ISO-8601 string, or in JSONata a ``{% %}`` string
    timestamp: Json = MISSING
    timestamp_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SucceedState(State):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class FailState(State):
    error: Json = MISSING
    error_path: str | None = None
    cause: Json = MISSING
    cause_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelState(State):
    branches: tuple[StateMachine, ...]
    parameters: Json = MISSING
    arguments: Json = MISSING
    result_selector: Json = MISSING
    result_path: str | Any | None = MISSING
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MapState(State):
    item_processor: StateMachine
    #: "INLINE" or "DISTRIBUTED"
    mode: Literal["INLINE", "DISTRIBUTED"] = "INLINE"
    #: for DISTRIBUTED: "STANDARD" or "EXPRESS"
    execution_type: str | None = None
    items_path: str | Any | None = MISSING
    #: JSONata: an array or a ``{% %}`` string
    items: Json = MISSING
    item_selector: Json = MISSING
    #: the legacy ``Parameters`` field, which acts as ``ItemSelector``
    parameters: Json = MISSING
    item_reader: Json = MISSING
    item_batcher: Json = MISSING
    result_writer: Json = MISSING
    result_selector: Json = MISSING
    result_path: str | Any | None = MISSING
    max_concurrency: Json = MISSING
    max_concurrency_path: str | None = None
    tolerated_failure_count: Json = MISSING
    tolerated_failure_count_path: str | None = None
    tolerated_failure_percentage: Json = MISSING
    tolerated_failure_percentage_path: str | None = None
    label: str | None = None
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()


# --------------------------------------------------------------------------- machines


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMachine:
    """A top-level machine, a Parallel branch or a Map's item processor."""

    start_at: str
    states: Mapping[str, State]
    query_language: QueryLanguage = JSONPATH
    comment: str | None = None
    version: str | None = None
    timeout_seconds: int | None = None
    #: the raw JSON this machine was parsed from (kept for describing and hashing)
    source: Json = field(default=None, compare=False, repr=False)

    def state(self, name: str) -> State:
        return self.states[name]
