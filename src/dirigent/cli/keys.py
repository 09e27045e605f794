"""``dirigent keys add NAME --role viewer|operator``: a new key pair and token for a running server.

The new principal is appended to the data directory's ``credentials.json``
(mode 0600); a running server picks it up the first time it is presented, with
no restart. This is the one command that shows a secret: handing it over is
its purpose, and the file keeps it too.

This module only turns flags into a call to :mod:`dirigent.api.keyfile`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dirigent.api.keyfile import CREDENTIALS_FILE, CredentialsError, add_principal


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="manage the server's access keys and tokens",
        description="Manage the access keys (Step Functions API, SigV4) and bearer tokens "
        "(REST API) in the server's data directory.",
    )
    commands = parser.add_subparsers(dest="keys_command", metavar="COMMAND")
    commands.required = True
    add = commands.add_parser(
        "add",
        help="add a viewer or operator key pair and token",
        description="Add a principal with a fresh access key pair and bearer token to "
        f"DATA_DIR/{CREDENTIALS_FILE}. A running server accepts it without a restart.",
    )
    add.add_argument("name", help="who the key is for (unique in the file)")
    add.add_argument(
        "--role",
        required=True,
        choices=("viewer", "operator"),
        help="viewer reads; operator also starts, stops and redrives executions and answers tasks",
    )
    add.add_argument("--data-dir", help="the server's data directory (env DIRIGENT_DATA_DIR)")
    add.add_argument("--json", action="store_true", help="print JSON instead of text")
    add.set_defaults(handler=cmd_add)


def cmd_add(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or os.environ.get("DIRIGENT_DATA_DIR") or ".dirigent")
    try:
        principal = add_principal(data_dir, args.name, args.role)
    except CredentialsError as exc:
        print(f"dirigent keys add: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "name": principal.name,
                    "role": principal.role,
                    "accessKeyId": principal.access_key_id,
                    "secretAccessKey": principal.secret_access_key,
                    "token": principal.token,
                }
            )
        )
        return 0
    print(f"added {principal.role} {principal.name!r} to {data_dir / CREDENTIALS_FILE}")
    print(f"  AWS_ACCESS_KEY_ID={principal.access_key_id}")
    print(f"  AWS_SECRET_ACCESS_KEY={principal.secret_access_key}")
    print(f"  DIRIGENT_TOKEN={principal.token}")
    return 0
