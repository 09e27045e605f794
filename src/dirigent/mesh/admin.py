"""The mesh's admin listener: ``GET /metrics`` in the Prometheus text format.

Kept apart from the traffic listeners, as Envoy keeps its admin port, so a
scrape never competes with application routes or their authorization. The
runtime's autoscaler and the conductor read the same :class:`Metrics`.

This module must never carry application traffic.
"""

from __future__ import annotations

import asyncio
import contextlib

from dirigent.mesh import http1
from dirigent.mesh.telemetry import Metrics

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Admin:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host, port)

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reader = http1.MessageReader(stream, responses=False)
        with contextlib.suppress(ConnectionError, http1.ProtocolError):
            while (request := await reader.head()) is not None:
                await reader.whole_body(request, 0)
                path = request.target.split(b"?", 1)[0]
                if request.method in (b"GET", b"HEAD") and path == b"/metrics":
                    status, body = 200, self.metrics.render()
                else:
                    status, body = 404, b"only /metrics is served here\n"
                head = http1.response_head(
                    status, [(b"content-type", CONTENT_TYPE)], length=len(body),
                    keep_alive=request.keep_alive,
                )  # fmt: skip
                writer.write(head if request.method == b"HEAD" else head + body)
                await writer.drain()
                if not request.keep_alive:
                    break
        writer.close()
