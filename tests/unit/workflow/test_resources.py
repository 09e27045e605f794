"""Task resource ARNs are classified into AWS's event families and dispatch kinds."""

from __future__ import annotations

from dirigent.workflow.resources import classify


def test_a_lambda_function_arn_is_recorded_as_lambda_function_events() -> None:
    resource = classify("arn:aws:lambda:eu-west-1:123456789012:function:charge")
    assert (resource.kind, resource.event_family, resource.region) == (
        "lambda",
        "LambdaFunction",
        "eu-west-1",
    )


def test_an_activity_arn_is_recorded_as_activity_events() -> None:
    resource = classify("arn:aws:states:us-east-1:123456789012:activity:review")
    assert (resource.kind, resource.event_family) == ("activity", "Activity")


def test_lambda_invoke_integration_splits_type_and_resource() -> None:
    resource = classify("arn:aws:states:::lambda:invoke")
    assert (resource.kind, resource.resource_type, resource.resource) == (
        "lambda:invoke",
        "lambda",
        "invoke",
    )


def test_wait_for_task_token_and_sync_suffixes_are_recognised() -> None:
    callback = classify("arn:aws:states:::http:invoke.waitForTaskToken")
    assert callback.kind == "http"
    assert callback.wait_for_token
    assert callback.resource == "invoke.waitForTaskToken"
    child = classify("arn:aws:states:::states:startExecution.sync:2")
    assert child.kind == "states:startExecution"
    assert child.sync == "sync:2"
