"""The ASGI application: ``/healthz``, the Step Functions protocol at ``/``, REST under ``/api/v1``.

Starlette routes and uvicorn (on uvloop and httptools) speaks HTTP/1.1; we
chose them over a home-made server because keep-alive, pipelining, streaming
responses, slow clients and graceful shutdown are solved there and tested by
many, while every decision that is ours (protocol, signatures, roles) lives in
pure modules beside this one.

This module must never start the engine or open the store: the composition
root (:mod:`dirigent.app`) owns their lifetimes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dirigent.api import rest, stepfunctions
from dirigent.api.context import ApiContext


class _Asgi:
    """An ASGI callable as a route endpoint: Starlette treats bare functions as
    request handlers, and anything else as ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(context: ApiContext) -> ASGIApp:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def step_functions(scope: Scope, receive: Receive, send: Send) -> None:
        await stepfunctions.handle(context, scope, receive, send)

    async def http_error(_request: Request, exc: Exception) -> Response:
        # Starlette's own 404/405 answers are plain text; keep every answer JSON.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "HttpError")
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return rest.error_response(code, str(detail), status)

    routed = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            # Kept in the table so other methods on / get Starlette's 405; a POST
            # never gets this far (see below).
            Route("/", _Asgi(step_functions), methods=["POST"]),
            *rest.routes(context),
        ],
        exception_handlers={HTTPException: http_error},
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Every SDK call is a POST to /: it skips Starlette's middleware and
        # router, which cost as much of the event loop as the handler itself.
        if scope["type"] == "http" and scope["path"] == "/" and scope["method"] == "POST":
            await stepfunctions.handle(context, scope, receive, send)
        else:
            await routed(scope, receive, send)

    return app


#: how long a stopping server lets requests in flight (long polls, live streams) go on
GRACEFUL_SHUTDOWN_SECONDS = 8


def _config(context: ApiContext, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(context),
        host=host,
        port=port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        # No X-Forwarded-* rewriting: nothing here reads the client's address,
        # and the middleware costs the event loop a call per request.
        proxy_headers=False,
        # Keep-alive beyond uvicorn's 5 s default: SDK clients reuse connections
        # between calls that are often seconds apart.
        timeout_keep_alive=65,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, telling the handlers when it begins to stop."""

    def __init__(
        self,
        config: uvicorn.Config,
        context: ApiContext,
        on_started: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self.context = context
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.context.closing = True
        super().handle_exit(sig, frame)


class _Embedded(_Server):
    """A server living inside someone else's event loop, which owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RunningServer:
    """An HTTP server started on the caller's event loop; :meth:`stop` ends it gracefully."""

    def __init__(self, server: _Server, task: asyncio.Task[None]) -> None:
        self._server = server
        self._task = task

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def begin_stop(self) -> None:
        """Stop accepting and end live streams; :meth:`stop` waits for the rest."""
        self._server.context.closing = True
        self._server.should_exit = True

    async def stop(self) -> None:
        self.begin_stop()
        await self._task


async def start_http(
    context: ApiContext, host: str, port: int, log_level: str = "warning"
) -> RunningServer:
    """Serve on the running loop (``dirigent up``); returns once the socket listens."""
    server = _Embedded(_config(context, host, port, log_level), context)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise why it could not start (the port is taken...)
            raise OSError(f"the API server on {host}:{port} stopped at start")
        await asyncio.sleep(0.01)
    return RunningServer(server, task)


def make_server(
    context: ApiContext,
    listeners: list[socket.socket],
    log_level: str,
    on_started: Callable[[], None] = lambda: None,
) -> uvicorn.Server:
    """A server for sockets already bound and listening; run it with
    ``await server.serve(sockets=listeners)``; ``on_started`` once it serves.
    SIGINT and SIGTERM stop it gracefully; a second one at once."""
    host, port = listeners[0].getsockname()[:2]
    return _Server(_config(context, host, port, log_level), context, on_started)
