"""The control plane's APIs: the Step Functions protocol, REST and their authentication.

Only this package imports the HTTP server stack (Starlette, uvicorn); the rest
of Dirigent reaches the engine directly or through these APIs.

``ApiContext`` and ``create_app`` are loaded when first asked for, so that a
light module of this package (``dirigent.api.keyfile``, which the CLI's
``keys`` command reads) does not bring the server stack and the engine with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dirigent.api.context import ApiContext
    from dirigent.api.server import create_app

__all__ = ["ApiContext", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "ApiContext":
        from dirigent.api.context import ApiContext  # noqa: PLC0415

        return ApiContext
    if name == "create_app":
        from dirigent.api.server import create_app  # noqa: PLC0415

        return create_app
    raise AttributeError(f"module 'dirigent.api' has no attribute {name!r}")
