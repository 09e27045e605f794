"""The errors the engine's API raises, named and shaped as Step Functions names them.

Each carries AWS's error code (the ``__type`` of the JSON protocol) and the HTTP
status AWS answers with, so the API layer translates them without a table of
its own. All are user errors: they are raised before anything is stored.

    DirigentError
    └── ServiceError
        ├── ValidationException          (and every Invalid* below is a 400 too)
        ├── InvalidArn, InvalidDefinition, InvalidName, InvalidExecutionInput,
        │   InvalidToken, InvalidOutput
        ├── StateMachineDoesNotExist, StateMachineAlreadyExists, StateMachineDeleting
        ├── ExecutionDoesNotExist, ExecutionAlreadyExists, ExecutionNotRedrivable
        ├── ActivityDoesNotExist, TaskDoesNotExist, TaskTimedOut
        ├── ResourceNotFound, ConflictException, TooManyTags
        └── ServiceQuotaExceeded
"""

from __future__ import annotations

from dirigent.errors import DirigentError


class ServiceError(DirigentError):
    code = "ValidationException"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _error(name: str, code: str | None = None, status: int = 400) -> type[ServiceError]:
    return type(name, (ServiceError,), {"code": code or name, "status": status})


ValidationException = _error("ValidationException")
InvalidArn = _error("InvalidArn")
InvalidDefinition = _error("InvalidDefinition")
InvalidName = _error("InvalidName")
InvalidExecutionInput = _error("InvalidExecutionInput")
InvalidToken = _error("InvalidToken")
InvalidOutput = _error("InvalidOutput")
StateMachineDoesNotExist = _error("StateMachineDoesNotExist")
StateMachineAlreadyExists = _error("StateMachineAlreadyExists")
StateMachineDeleting = _error("StateMachineDeleting")
ExecutionDoesNotExist = _error("ExecutionDoesNotExist")
ExecutionAlreadyExists = _error("ExecutionAlreadyExists")
ExecutionNotRedrivable = _error("ExecutionNotRedrivable")
ActivityDoesNotExist = _error("ActivityDoesNotExist")
TaskDoesNotExist = _error("TaskDoesNotExist")
TaskTimedOut = _error("TaskTimedOut")
ResourceNotFound = _error("ResourceNotFound")
ConflictException = _error("ConflictException")
TooManyTags = _error("TooManyTags")
ServiceQuotaExceeded = _error("ServiceQuotaExceededException")
StateMachineTypeNotSupported = _error("StateMachineTypeNotSupported")
