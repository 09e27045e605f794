"""Every Step Functions action the server answers, bound to the engine that serves it.

The table is the one place where an action name meets the code behind it;
:data:`dirigent.api.protocol.SHAPES` types the requests and
:data:`dirigent.api.auth.ACTION_ROLES` guards them. A test pins that all three
list the same actions.

This module must never parse HTTP or check credentials: it is called with a
decoded request by a caller who is already allowed to make it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dirigent.api import extras
from dirigent.engine import Engine

Action = Callable[[Mapping[str, Any]], dict[str, Any]]

#: actions that may block for long (long polls, synchronous executions); they get
#: their own thread pool so they cannot starve the quick ones
LONG_ACTIONS = frozenset({"GetActivityTask", "StartSyncExecution"})


def bind_actions(engine: Engine) -> dict[str, Action]:
    catalog, executions = engine.catalog, engine.executions

    def with_engine(function: Callable[[Engine, Mapping[str, Any]], dict[str, Any]]) -> Action:
        return lambda request: function(engine, request)

    return {
        "CreateStateMachine": catalog.create_state_machine,
        "UpdateStateMachine": catalog.update_state_machine,
        "DeleteStateMachine": catalog.delete_state_machine,
        "DescribeStateMachine": catalog.describe_state_machine,
        "ListStateMachines": catalog.list_state_machines,
        "PublishStateMachineVersion": catalog.publish_state_machine_version,
        "ListStateMachineVersions": catalog.list_state_machine_versions,
        "DeleteStateMachineVersion": catalog.delete_state_machine_version,
        "CreateStateMachineAlias": catalog.create_state_machine_alias,
        "DescribeStateMachineAlias": catalog.describe_state_machine_alias,
        "ListStateMachineAliases": catalog.list_state_machine_aliases,
        "UpdateStateMachineAlias": catalog.update_state_machine_alias,
        "DeleteStateMachineAlias": catalog.delete_state_machine_alias,
        "CreateActivity": catalog.create_activity,
        "DescribeActivity": catalog.describe_activity,
        "DeleteActivity": catalog.delete_activity,
        "ListActivities": catalog.list_activities,
        "TagResource": catalog.tag_resource,
        "UntagResource": catalog.untag_resource,
        "ListTagsForResource": catalog.list_tags_for_resource,
        "StartExecution": executions.start_execution,
        "StartSyncExecution": engine.start_sync_execution,
        "DescribeExecution": executions.describe_execution,
        "DescribeStateMachineForExecution": executions.describe_state_machine_for_execution,
        "ListExecutions": executions.list_executions,
        "GetExecutionHistory": executions.get_execution_history,
        "StopExecution": executions.stop_execution,
        "RedriveExecution": executions.redrive_execution,
        "SendTaskSuccess": executions.send_task_success,
        "SendTaskFailure": executions.send_task_failure,
        "SendTaskHeartbeat": executions.send_task_heartbeat,
        "GetActivityTask": engine.get_activity_task,
        "ValidateStateMachineDefinition": extras.validate_state_machine_definition,
        "TestState": with_engine(extras.test_state),
        "DescribeMapRun": with_engine(extras.describe_map_run),
        "ListMapRuns": with_engine(extras.list_map_runs),
    }
