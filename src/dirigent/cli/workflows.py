"""``dirigent validate`` and ``dirigent run``: workflows on this machine, no server.

Exit codes follow the CLI's convention: 0 valid / SUCCEEDED, 1 invalid / did
not succeed, 2 bad usage (a missing file, unreadable JSON input, an invalid
definition given to ``run``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dirigent.asl.jsonload import load_json_text
from dirigent.asl.parser import parse_definition
from dirigent.errors import DefinitionError, DirigentError, InputError
from dirigent.testing.local import run_local

#: AWS's limit on an execution's input
MAX_INPUT_BYTES = 256 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check an Amazon States Language definition",
        description="Check an Amazon States Language definition. Exit 0 when valid, 1 when not.",
    )
    validate.add_argument("file", help="the definition (JSON)")
    validate.add_argument("--json", action="store_true", help="print the verdict as JSON")
    validate.set_defaults(handler=cmd_validate)

    run = subparsers.add_parser(
        "run",
        help="run a workflow to completion in this process",
        description="Run a state machine in-process. Exit 0 when it SUCCEEDED, 1 when it did "
        "not, 2 for bad usage or an invalid definition.",
    )
    run.add_argument("file", help="the definition (JSON)")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--input", help="the execution input as JSON text")
    source.add_argument("--input-file", help="a file holding the execution input")
    run.add_argument(
        "--name",
        help="the state machine's name in the mock configuration (default: the file's stem)",
    )
    run.add_argument("--mock-config", help="a MockConfigFile (AWS Step Functions Local format)")
    run.add_argument("--test-case", help="the test case of the mock configuration to use")
    run.add_argument(
        "--virtual-time",
        action="store_true",
        help="fire timers at once while the history's clock advances",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print {status, output, error, cause, history} as one JSON object",
    )
    run.set_defaults(handler=cmd_run)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        text = _read(args.file)
    except InputError as exc:
        print(f"dirigent validate: {exc}", file=sys.stderr)
        return 2
    try:
        parse_definition(text)
    except DefinitionError as exc:
        if args.json:
            errors = [{"pointer": d.pointer, "message": d.message} for d in exc.diagnostics]
            print(json.dumps({"valid": False, "errors": errors}))
        else:
            for diagnostic in exc.diagnostics:
                print(f"{args.file}: {diagnostic}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, "errors": []}))
    else:
        print(f"{args.file}: valid")
    return 0


def _input(args: argparse.Namespace) -> Any:
    if args.input_file is not None:
        raw = _read(args.input_file)
        where = args.input_file
    elif args.input is not None:
        raw = args.input.encode("utf-8")
        where = "--input"
    else:
        return {}
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(
            f"{where}: the input is {len(raw)} bytes; executions accept at most "
            f"{MAX_INPUT_BYTES} bytes (256 KiB)"
        )
    try:
        return load_json_text(raw)
    except DefinitionError as exc:
        raise InputError(f"{where}: {exc.diagnostics[0]}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    try:
        definition = parse_definition(_read(args.file))
        execution_input = _input(args)
        mock_config = None
        if args.mock_config is not None:
            mock_config = _json_file(args.mock_config)
        elif args.test_case is not None:
            raise InputError("--test-case needs --mock-config")
        name = args.name or Path(args.file).name.split(".")[0]
        result = run_local(
            definition,
            execution_input,
            mock_config=mock_config,
            test_case=args.test_case,
            state_machine_name=name,
            virtual_time=args.virtual_time,
        )
    except DefinitionError as exc:
        for diagnostic in exc.diagnostics:
            print(f"{args.file}: {diagnostic}", file=sys.stderr)
        return 2
    except DirigentError as exc:
        print(f"dirigent run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json()))
    elif result.status == "SUCCEEDED":
        print(json.dumps(result.output, indent=2))
    else:
        print(f"{result.status}: {result.error or ''}", file=sys.stderr)
        if result.cause:
            print(result.cause, file=sys.stderr)
    return 0 if result.status == "SUCCEEDED" else 1


def _json_file(path: str) -> Any:
    # The strict loader: no duplicate keys, and no nesting deep enough to
    # exhaust the stack of json's recursive decoder.
    try:
        return load_json_text(_read(path))
    except DefinitionError as exc:
        raise InputError(f"{path}: {exc.diagnostics[0]}") from exc
