"""schemathesis against /api/v1/openapi.json: no 5xx, every answer as the document says.

The run is bounded (a few dozen generated cases per operation) so it stays a
test, not a soak.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import Server


def get_json(server: Server, path: str) -> Any:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {server.admin.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    # A real machine and execution, so generated names sometimes hit something.
    client = server.client()
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    arn = client.create_state_machine(
        name="schema", definition=json.dumps(definition), roleArn="arn:aws:iam::1:role/r"
    )["stateMachineArn"]
    client.start_execution(stateMachineArn=arn, name="first")
    return schemathesis.openapi.from_dict(get_json(server, "/api/v1/openapi.json"))


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def test_the_rest_api_keeps_its_openapi_document(api_schema: Any, server: Server) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest plugin does not
    # load under the pytest this project uses.
    headers = {"Authorization": f"Bearer {server.admin.token}"}
    # The live feed never ends by design (it is a stream for the dashboard);
    # test_live_events checks it.
    operations = [
        operation
        for operation in (result.ok() for result in api_schema.get_all_operations())
        if operation.path != "/api/v1/events"
    ]
    assert len(operations) >= 12
    seen: set[tuple[str, int]] = set()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=server.url, headers=headers, checks=CHECKS, timeout=30
            )
            seen.add((case.operation.label, response.status_code))

        check()

    # The run reached the handlers, not just the authentication in front of them.
    assert {status for _, status in seen} >= {200, 400, 404}
