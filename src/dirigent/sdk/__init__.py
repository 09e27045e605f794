"""A small SDK for service authors: functions, activity workers and a client.

    from dirigent.sdk import Functions, StepFunctions, ActivityWorker

    functions = Functions()

    @functions.function()
    def charge(order, context):          # context.idempotency_key makes retries safe
        ...

    client = StepFunctions.from_environment()        # or StepFunctions(endpoint, key, secret)
    result = client.run(machine_arn, {"orderId": "o-1"})   # start and await

    ActivityWorker(client, activity_arn, handle_review).run()   # until stopped

It needs no server-side package: the client speaks the Step Functions JSON
protocol, signed with AWS Signature Version 4, using the standard library.
"""

from dirigent.engine.functions import InvocationContext
from dirigent.sdk.activity import ActivityWorker, TaskFailure
from dirigent.sdk.client import ExecutionFailed, StepFunctions, StepFunctionsError
from dirigent.sdk.functions import Functions

__all__ = [
    "ActivityWorker",
    "ExecutionFailed",
    "Functions",
    "InvocationContext",
    "StepFunctions",
    "StepFunctionsError",
    "TaskFailure",
]
