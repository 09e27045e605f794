"""Restate's side of the engine benchmark, the service: N sequential ``ctx.run`` no-op steps.

Served by hypercorn (HTTP/2 without TLS, as the Restate server talks to its
deployments) from the peers' virtual environment; the Restate server journals
each step's result durably before the handler goes on.

usage: bench/engine/.venv-peers/bin/hypercorn --bind 127.0.0.1:PORT restate_service:app
"""

from __future__ import annotations

from typing import Any

import restate

service = restate.Service("Bench")


def noop(value: Any) -> Any:
    return value


@service.handler()
async def sequence(ctx: restate.Context, request: dict[str, Any]) -> Any:
    value = request["value"]
    for _ in range(int(request["steps"])):
        value = await ctx.run_typed("noop", noop, value=value)
    return value


app = restate.app(services=[service])
