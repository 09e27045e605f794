"""Entry point of the ``dirigent`` command: builds the parser and dispatches.

Each command group lives in its own module with a ``register(subparsers)``
function; this module only assembles them. Exit codes: 0 success, 1 the thing
ran but did not succeed (an invalid definition, a failed execution), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from dirigent import __version__
from dirigent.cli import demo, executions, keys, runtime, server, workflows

#: command modules, in the order their commands appear in ``--help``
COMMAND_MODULES: tuple[ModuleType, ...] = (workflows, runtime, server, keys, executions, demo)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dirigent",
        description="Run services, connect them and orchestrate workflows across them.",
    )
    parser.add_argument("--version", action="version", version=f"dirigent {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
