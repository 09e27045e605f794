"""The failure a data-flow step raises inside the core.

Evaluating a path, an intrinsic function or a JSONata expression can fail at run
time (a missing field, a wrong type). Those failures are part of the language:
they have an ASL error name (``States.Runtime``, ``States.QueryEvaluationError``,
``States.IntrinsicFailure`` ...) and a cause, and a Retry or Catch may handle them.
The workflow core catches :class:`StatesFailure` at its boundary and turns it
into data; it never escapes to the shell.
"""

from __future__ import annotations

RUNTIME = "States.Runtime"
QUERY_EVALUATION = "States.QueryEvaluationError"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
EXCEED_TOLERATED_FAILURE = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
PERMISSIONS = "States.Permissions"
ALL = "States.ALL"


class StatesFailure(Exception):
    """An ASL run-time failure: ``error`` is the ASL error name, ``cause`` the text.

    ``cause`` is the message AWS would put after the standard
    "An error occurred while executing the state ..." prefix; the workflow core
    adds that prefix because only it knows the state and the event id.
    """

    def __init__(self, error: str, cause: str, *, prefixed: bool = True) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        #: whether the core should add "An error occurred while executing the state ..."
        self.prefixed = prefixed
