"""Parsing the nested rule objects of a state: Retry, Catch, Choice rules, Resource.

Its job: turn ``Retry``/``Catch`` entries, Choice rules and a Task's
``Resource`` into model values while reporting every rule AWS enforces when a
state machine is created (``ErrorEquals`` non-empty, ``States.ALL`` alone and
last, ``BackoffRate >= 1``, exactly one comparison operator per Choice rule,
recognized service integrations...).

It must never raise for bad input; problems go to the :class:`Report`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dirigent.asl import syntax
from dirigent.asl.fields import Fields, Report, child
from dirigent.asl.jsontext import json_type_name as type_name
from dirigent.asl.model import (
    JSONATA,
    JSONPATH,
    MISSING,
    And,
    Catcher,
    ChoiceRule,
    Comparison,
    Condition,
    Json,
    JsonataCondition,
    Not,
    Or,
    QueryLanguage,
    Retrier,
)

ALL_ERRORS = "States.ALL"

# --------------------------------------------------------------------------- Retry / Catch


def parse_retry(
    report: Report, raw: Json, pointer: str, language: QueryLanguage
) -> tuple[Retrier, ...]:
    retriers: list[Retrier] = []
    for index, entry, at in _entries(report, raw, pointer, "Retry"):
        fields = Fields(entry, at, report, language)
        fields.only(
            (
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            )
        )
        errors = _error_equals(fields, last=index == len(raw) - 1, kind="Retrier")
        interval = fields.integer("IntervalSeconds", minimum=1)
        attempts = fields.integer("MaxAttempts", minimum=0)
        backoff = fields.number("BackoffRate", minimum=1.0, maximum=float(10**8))
        max_delay = fields.integer("MaxDelaySeconds", minimum=1, maximum=31_622_400)
        jitter = fields.choice("JitterStrategy", ("FULL", "NONE"))
        comment = fields.string("Comment")
        retriers.append(
            Retrier(
                error_equals=errors,
                interval_seconds=1 if interval is MISSING else interval,
                max_attempts=3 if attempts is MISSING else attempts,
                backoff_rate=2.0 if backoff is MISSING else float(backoff),
                max_delay_seconds=None if max_delay is MISSING else max_delay,
                jitter_strategy="NONE" if jitter is MISSING else jitter,
                comment=None if comment is MISSING else comment,
            )
        )
    return tuple(retriers)


def parse_catch(
    report: Report, raw: Json, pointer: str, language: QueryLanguage
) -> tuple[Catcher, ...]:
    catchers: list[Catcher] = []
    for index, entry, at in _entries(report, raw, pointer, "Catch"):
        fields = Fields(entry, at, report, language)
        allowed = ["ErrorEquals", "Next", "Comment", "Assign"]
        allowed += ["ResultPath"] if language == JSONPATH else ["Output"]
        fields.only(allowed)
        errors = _error_equals(fields, last=index == len(raw) - 1, kind="Catcher")
        fields.require("Next")
        target = fields.string("Next", nonempty=True)
        comment = fields.string("Comment")
        if language == JSONPATH:
            result_path = fields.path(
                "ResultPath", reference=True, nullable=True, context=False, variables=False
            )
            assign = fields.template("Assign", objects_only=True)
            output: Json = MISSING
        else:
            result_path = MISSING
            assign = fields.jsonata("Assign")
            output = fields.jsonata("Output")
        check_variable_names(fields, assign)
        catchers.append(
            Catcher(
                error_equals=errors,
                next=target if isinstance(target, str) else "",
                result_path=result_path,
                output=output,
                assign=assign,
                comment=None if comment is MISSING else comment,
            )
        )
    return tuple(catchers)


def _entries(
    report: Report, raw: Json, pointer: str, name: str
) -> list[tuple[int, Mapping[str, Json], str]]:
    if not isinstance(raw, list):
        report.error(
            pointer, f"The value of the field '{name}' must be an array, not {type_name(raw)}"
        )
        return []
    found: list[tuple[int, Mapping[str, Json], str]] = []
    for index, entry in enumerate(raw):
        at = child(pointer, index)
        if isinstance(entry, dict):
            found.append((index, entry, at))
        else:
            report.error(at, f"Each entry of '{name}' must be an object, not {type_name(entry)}")
    return found


def _error_equals(fields: Fields, *, last: bool, kind: str) -> tuple[str, ...]:
    if not fields.require("ErrorEquals"):
        return ()
    raw = fields.raw["ErrorEquals"]
    if not isinstance(raw, list) or not raw:
        fields.error("ErrorEquals", "The field 'ErrorEquals' must be a non-empty array of strings")
        return ()
    names: list[str] = []
    for index, name in enumerate(raw):
        if isinstance(name, str) and name:
            names.append(name)
        else:
            fields.report.error(
                child(fields.at("ErrorEquals"), index), "Error names must be non-empty strings"
            )
    if ALL_ERRORS in names:
        if len(names) > 1:
            fields.error("ErrorEquals", f"'{ALL_ERRORS}' must appear alone in 'ErrorEquals'")
        if not last:
            fields.error("ErrorEquals", f"A {kind} with '{ALL_ERRORS}' must be the last one")
    return tuple(names)


def check_variable_names(fields: Fields, assign: Json) -> None:
    """``Assign`` keys name variables: non-empty, at most 80 characters, no blanks or dots.

    Kept loose on purpose: AWS accepts names (``top-level``) that a stricter
    identifier rule would refuse, and refusing a definition AWS runs is worse
    than accepting an odd name.
    """
    if not isinstance(assign, dict):
        if (
            assign is not MISSING
            and fields.language == JSONATA
            and not syntax.is_jsonata_expression(assign)
        ):
            fields.wrong_type("Assign", "an object")
        return
    for key in assign:
        name = key[:-2] if key.endswith(".$") and fields.language == JSONPATH else key
        if not name or len(name) > 80 or re.search(r"[\s.$]", name):
            fields.report.error(
                child(fields.at("Assign"), key), f"'{name}' is not a valid variable name"
            )


# --------------------------------------------------------------------------- Choice rules

_COMPARED = ("String", "Numeric", "Timestamp")
_RELATIONS = ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
_TYPE_TESTS = ("IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp")
OPERATORS: frozenset[str] = frozenset(
    [f"{kind}{rel}{suffix}" for kind in _COMPARED for rel in _RELATIONS for suffix in ("", "Path")]
    + ["BooleanEquals", "BooleanEqualsPath", "StringMatches", *_TYPE_TESTS]
)
_BOOLEAN_OPERATORS = ("And", "Or", "Not")


def parse_choice_rule(
    report: Report, raw: Json, pointer: str, language: QueryLanguage
) -> ChoiceRule | None:
    """One entry of ``Choices``: a condition plus ``Next`` (and ``Assign``/``Output``)."""
    if not isinstance(raw, dict):
        report.error(pointer, f"A Choice rule must be an object, not {type_name(raw)}")
        return None
    fields = Fields(raw, pointer, report, language)
    if language == JSONATA:
        fields.only(("Condition", "Next", "Comment", "Assign", "Output"))
        fields.require("Condition")
        condition: Condition | None = _jsonata_condition(fields)
        assign = fields.jsonata("Assign")
        output = fields.jsonata("Output")
    else:
        condition = _condition(fields, top=True)
        assign = fields.template("Assign", objects_only=True)
        output = MISSING
    check_variable_names(fields, assign)
    fields.require("Next")
    target = fields.string("Next", nonempty=True)
    comment = fields.string("Comment")
    if condition is None or not isinstance(target, str):
        return None
    return ChoiceRule(
        condition=condition,
        next=target,
        assign=assign,
        output=output,
        comment=None if comment is MISSING else comment,
    )


def _jsonata_condition(fields: Fields) -> Condition | None:
    value = fields.raw.get("Condition", MISSING)
    if value is MISSING:
        return None
    if isinstance(value, bool):
        return JsonataCondition(condition=value)
    if syntax.is_jsonata_expression(value):
        problem = syntax.jsonata_error(value)
        if problem:
            fields.error("Condition", problem)
            return None
        return JsonataCondition(condition=value)
    fields.error("Condition", "The field 'Condition' must be a boolean or a JSONata expression")
    return None


def _condition(fields: Fields, *, top: bool) -> Condition | None:
    raw = fields.raw
    extra = {"Next", "Comment", "Assign"} if top else {"Comment"}
    operators = [k for k in raw if k in OPERATORS or k in _BOOLEAN_OPERATORS]
    # Nested rules cannot transition or assign: only() reports Next/Assign there.
    fields.only({*OPERATORS, *_BOOLEAN_OPERATORS, "Variable", *extra})
    if len(operators) != 1:
        message = (
            "A Choice rule must have a comparison operator"
            if not operators
            else "A Choice rule must have exactly one comparison operator, "
            f"found {', '.join(operators)}"
        )
        fields.error(None, message)
        return None
    operator = operators[0]
    if operator in _BOOLEAN_OPERATORS:
        if "Variable" in raw:
            fields.error("Variable", f"The field 'Variable' cannot be used with '{operator}'")
        return _boolean_condition(fields, operator)
    if not fields.require("Variable"):
        return None
    variable = fields.raw["Variable"]
    if not isinstance(variable, str) or syntax.path_error(variable) is not None:
        fields.error("Variable", "The value for the field 'Variable' must be a valid JSONPath")
        return None
    operand = _operand(fields, operator)
    if operand is MISSING:
        return None
    by_path = operator.endswith("Path")
    return Comparison(
        variable=variable,
        operator=operator[:-4] if by_path else operator,
        operand=operand,
        by_path=by_path,
    )


def _boolean_condition(fields: Fields, operator: str) -> Condition | None:
    raw = fields.raw[operator]
    at = fields.at(operator)
    if operator == "Not":
        if not isinstance(raw, dict):
            fields.wrong_type(operator, "an object")
            return None
        inner = _condition(Fields(raw, at, fields.report, fields.language), top=False)
        return None if inner is None else Not(rule=inner)
    if not isinstance(raw, list) or not raw:
        fields.error(operator, f"The field '{operator}' must be a non-empty array of Choice rules")
        return None
    rules: list[Condition] = []
    for index, entry in enumerate(raw):
        entry_at = child(at, index)
        if not isinstance(entry, dict):
            fields.report.error(
                entry_at, f"A Choice rule must be an object, not {type_name(entry)}"
            )
            continue
        inner = _condition(Fields(entry, entry_at, fields.report, fields.language), top=False)
        if inner is not None:
            rules.append(inner)
    if len(rules) != len(raw):
        return None
    return And(rules=tuple(rules)) if operator == "And" else Or(rules=tuple(rules))


def _operand(fields: Fields, operator: str) -> Json:
    value = fields.raw[operator]
    if operator.endswith("Path"):
        return fields.path(operator)
    if operator in _TYPE_TESTS or operator == "BooleanEquals":
        return fields.boolean(operator)
    if operator.startswith("Numeric"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            fields.wrong_type(operator, "a number")
            return MISSING
        return value
    value = fields.string(operator)
    if isinstance(value, str) and operator.startswith("Timestamp"):
        problem = syntax.timestamp_error(value)
        if problem:
            fields.error(operator, problem)
            return MISSING
    return value


# --------------------------------------------------------------------------- Resource

_PARTITIONS = r"aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b|aws-iso-e|aws-iso-f|aws-eusc"
_ARN = re.compile(rf"arn:({_PARTITIONS}):([a-z0-9-]+):([a-z0-9-]*):(\d*):(.+)", re.S)
_LAMBDA_FUNCTION = re.compile(r"function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?")
_ACTIVITY = re.compile(r"activity:[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/]{1,80}")
_SUFFIXES = (".sync:2", ".sync", ".waitForTaskToken")

#: The optimized integrations (``arn:aws:states:::<service>:<action>``) AWS recognizes.
OPTIMIZED_INTEGRATIONS: dict[str, frozenset[str]] = {
    service: frozenset(actions.split())
    for service, actions in {
        "lambda": "invoke",
        "sns": "publish",
        "sqs": "sendMessage",
        "dynamodb": "getItem putItem updateItem deleteItem",
        "ecs": "runTask",
        "batch": "submitJob",
        "glue": "startJobRun",
        "states": "startExecution",
        "events": "putEvents",
        "apigateway": "invoke",
        "http": "invoke",
        "s3": "getObject listObjectsV2 putObject",
        "athena": "startQueryExecution stopQueryExecution getQueryExecution getQueryResults"
        " startQueryExecution getDataCatalog",
        "codebuild": "startBuild stopBuild batchDeleteBuilds batchGetReports startBuildBatch"
        " stopBuildBatch retryBuildBatch deleteBuildBatch",
        "databrew": "startJobRun",
        "elasticmapreduce": "createCluster terminateCluster addStep cancelStep"
        " setClusterTerminationProtection modifyInstanceFleetByName modifyInstanceGroupByName",
        "emr-containers": "createVirtualCluster deleteVirtualCluster startJobRun",
        "emr-serverless": "createApplication startApplication stopApplication deleteApplication"
        " startJobRun cancelJobRun",
        "eks": "createCluster deleteCluster createFargateProfile deleteFargateProfile"
        " createNodegroup deleteNodegroup runJob call",
        "sagemaker": "createEndpoint createEndpointConfig createHyperParameterTuningJob"
        " createLabelingJob createModel createProcessingJob createTrainingJob"
        " createTransformJob updateEndpoint",
        "mediaconvert": "createJob",
        "bedrock": "invokeModel createModelCustomizationJob",
    }.items()
}


def resource_error(resource: str) -> str | None:
    """Why AWS would not recognize a Task ``Resource``, or ``None``."""
    match = _ARN.fullmatch(resource)
    if match:
        service, region, account, rest = match.group(2, 3, 4, 5)
        if service == "lambda" and _LAMBDA_FUNCTION.fullmatch(rest):
            return None
        if service == "states":
            if not region and not account and _integration_known(rest):
                return None
            if region and _ACTIVITY.fullmatch(rest):
                return None
        elif service != "lambda":
            return None
        shown = f"arn:<partition>:{resource.split(':', 2)[2]}"
    else:
        shown = resource
    return (
        f"The resource provided {shown} is not recognized. The value is not a valid "
        "resource ARN, or the resource is not available in this region."
    )


def _integration_known(rest: str) -> bool:
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            rest = rest[: -len(suffix)]
            break
    if rest.startswith("aws-sdk:"):
        return re.fullmatch(r"aws-sdk:[a-z0-9-]+:[A-Za-z0-9]+", rest) is not None
    service, _, action = rest.partition(":")
    return action in OPTIMIZED_INTEGRATIONS.get(service, frozenset())


def express_resource_error(resource: str) -> str | None:
    """Express workflows cannot wait: no ``.sync`` and no ``.waitForTaskToken`` integrations."""
    if resource.endswith(".waitForTaskToken"):
        # AWS's message really ends in a space; kept so messages compare equal.
        return "Express state machine does not support '.waitForTaskToken' service integration "
    if resource.endswith((".sync", ".sync:2")):
        return "Express state machine does not support '.sync' service integration"
    return None
