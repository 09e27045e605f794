"""The control plane's APIs: the Step Functions protocol, REST and their authentication.

Only this package imports the HTTP server stack (Starlette, uvicorn); the rest
of Dirigent reaches the engine directly or through these APIs.
"""

from dirigent.api.context import ApiContext
from dirigent.api.server import create_app

__all__ = ["ApiContext", "create_app"]
