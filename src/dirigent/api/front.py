"""``dirigent server``'s HTTP front: a process that speaks HTTP and asks the engine to act.

Why a process of its own: in one process the HTTP work (parsing, SigV4,
JSON, the kernel's socket work) and the engine's worker loop share one GIL,
and the engine ran at about three quarters of its own speed behind the API
(BENCHMARKS.md, "A front in a process of its own"). Here the front holds the
listening sockets the engine's process bound and handed down, checks
credentials and roles, and sends each allowed call over a socketpair
(:mod:`dirigent.api.link`); the engine's process acts and answers.

The engine's process starts it (``python -m dirigent.api.front ...``, through
:mod:`dirigent.runtime.companion`), restarts it if it dies, and stops it with
SIGTERM: uvicorn then stops accepting, lets requests in flight finish and
exits. When the engine's process goes away the link closes and the front
exits at once: it has nothing to serve with.

This module must never open the store or run the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
import uvloop

from dirigent.api.auth import Principals
from dirigent.api.context import ApiContext
from dirigent.api.keyfile import CredentialsError, KeyFileRefresh, load_principals
from dirigent.api.link import RemoteBackend
from dirigent.api.server import make_server
from dirigent.engine.arns import Arns

#: the front's exit code when the engine's process closed the link
LINK_LOST = 3


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dirigent.api.front")
    parser.add_argument(
        "--listen-fd", type=int, action="append", required=True, help="a bound HTTP socket"
    )
    parser.add_argument("--link-fd", type=int, required=True, help="this end of the socketpair")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    principals, _ = load_principals(args.data_dir, os.environ, create=False)
    server: uvicorn.Server | None = None

    def on_lost() -> None:
        if server is not None:
            context.closing = True
            server.should_exit = True

    link = socket.socket(fileno=args.link_fd)
    backend = await RemoteBackend.connect(link, on_lost)
    context = ApiContext(
        backend,
        Principals(principals, KeyFileRefresh(args.data_dir, principals)),
        Arns(args.region, args.account),
    )
    listeners = [socket.socket(fileno=fd) for fd in args.listen_fd]
    server = make_server(context, listeners, args.log_level, on_started=backend.announce_ready)
    if backend.lost:  # the engine went away while this process started
        return LINK_LOST
    try:
        await server.serve(sockets=listeners)
    finally:
        context.close()
    return LINK_LOST if backend.lost else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_serve(args))
    except CredentialsError as exc:
        print(f"dirigent server (front): {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
