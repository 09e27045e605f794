"""The durable shell around the workflow core: executions that survive crashes.

Workers claim executions with due signals, fold them through the pure core and
commit history, snapshot and enqueued work in one transaction; tasks run in a
pool with at-least-once delivery and an idempotency key per attempt.
"""

from dirigent.engine.engine import Engine, EngineSettings
from dirigent.engine.errors import ServiceError
from dirigent.engine.functions import FunctionRegistry, InvocationContext

__all__ = ["Engine", "EngineSettings", "FunctionRegistry", "InvocationContext", "ServiceError"]
