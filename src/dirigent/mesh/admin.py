"""The mesh's admin listener: ``GET /metrics`` in the Prometheus text format.

Kept apart from the traffic listeners, as Envoy keeps its admin port, so a
scrape never competes with application routes or their authorization. The
runtime's autoscaler and the conductor read the same :class:`Metrics`.

This module must never carry application traffic.
"""

from __future__ import annotations

import asyncio

from dirigent.mesh import http1
from dirigent.mesh.heads import Request
from dirigent.mesh.telemetry import Metrics
from dirigent.mesh.wire import ServerConnection

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Admin:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: ServerConnection(self._dispatch, max_body=0), host, port
        )

    def _dispatch(self, client: ServerConnection, request: Request) -> None:
        path = request.target.split(b"?", 1)[0]
        if request.method in (b"GET", b"HEAD") and path == b"/metrics":
            status, body = 200, self.metrics.render()
        else:
            status, body = 404, b"only /metrics is served here\n"
        head = http1.response_head(
            status, [(b"content-type", CONTENT_TYPE)], length=len(body),
            keep_alive=request.keep_alive,
        )  # fmt: skip
        client.write(head if request.method == b"HEAD" else head + body)
        client.finish(request.keep_alive)
