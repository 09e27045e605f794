"""The workflow the crash tests run: Task, Wait, Map and Parallel, with a known output."""

from __future__ import annotations

import json
from typing import Any

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:"

DEFINITION: dict[str, Any] = {
    "StartAt": "AddOne",
    "States": {
        "AddOne": {"Type": "Task", "Resource": LAMBDA + "add_one", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Squares",
                    "States": {
                        "Squares": {
                            "Type": "Map",
                            "ItemsPath": "$.items",
                            "MaxConcurrency": 2,
                            "ItemProcessor": {
                                "StartAt": "Square",
                                "States": {
                                    "Square": {
                                        "Type": "Task",
                                        "Resource": LAMBDA + "slow_square",
                                        "End": True,
                                    }
                                },
                            },
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Double",
                    "States": {
                        "Double": {
                            "Type": "Task",
                            "Resource": LAMBDA + "double",
                            "InputPath": "$.value",
                            "End": True,
                        }
                    },
                },
            ],
            "ResultSelector": {"squares.$": "$[0]", "doubled.$": "$[1]"},
            "End": True,
        },
    },
}

#: AddOne's result replaces the input, so the items ride along in a Pass-free way
DEFINITION["States"]["AddOne"]["ResultSelector"] = {"value.$": "$.value"}
DEFINITION["States"]["AddOne"]["ResultPath"] = "$.added"
DEFINITION["States"]["Fan"]["Parameters"] = {"value.$": "$.added.value", "items.$": "$.items"}


def execution_input(n: int) -> dict[str, Any]:
    return {"value": n, "items": [n % 7, n % 5, 3]}


def expected_output(n: int) -> dict[str, Any]:
    return {"squares": [(n % 7) ** 2, (n % 5) ** 2, 9], "doubled": (n + 1) * 2}


def definition_text() -> str:
    return json.dumps(DEFINITION)
