"""``dirigent server``: run the control plane: every API and the engine's workers.

The engine runs in this process and the HTTP front in a second one that it
starts and keeps running (see :func:`dirigent.app.serve`): one command still.

This module only turns flags into :class:`dirigent.app.ServerSettings`; the
composition root does the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        help="serve the Step Functions API, the REST API and run the engine",
        description="Serve the Step Functions-compatible API (POST /), the REST API "
        "(/api/v1) and /healthz, and run the engine's workers. On first start an admin "
        "key pair and token are written to the data directory.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--store", help="store URL: sqlite:///PATH or postgresql://... (default: in the data dir)"
    )
    parser.add_argument("--data-dir", default=".dirigent", help="credentials and default store")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs")
    parser.add_argument("--account", default="123456789012", help="account id in ARNs")
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME=MODULE:ATTR",
        help="a Python callable for Lambda-style Task states (repeatable)",
    )
    parser.set_defaults(handler=cmd_server)


def cmd_server(args: argparse.Namespace) -> int:
    # Imported here: the server's stack (uvicorn, Starlette, the engine) is not
    # what every other `dirigent` command should wait for at start.
    from dirigent.api.keyfile import CredentialsError  # noqa: PLC0415
    from dirigent.app import FrontFailed, ListenError, ServerSettings, serve  # noqa: PLC0415
    from dirigent.store import StoreError  # noqa: PLC0415

    functions: dict[str, str] = {}
    for item in args.function:
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            print(
                f"dirigent server: --function {item!r}: expected NAME=MODULE:ATTR", file=sys.stderr
            )
            return 2
        functions[name] = target
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        store_url=args.store,
        data_dir=Path(args.data_dir),
        region=args.region,
        account=args.account,
        functions=functions,
    )
    try:
        serve(settings)
    except (CredentialsError, ListenError, StoreError) as exc:
        print(f"dirigent server: {exc}", file=sys.stderr)
        return 2
    except FrontFailed as exc:
        print(f"dirigent server: {exc}", file=sys.stderr)
        return 1
    return 0
