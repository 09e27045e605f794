"""``dirigent workflows deploy`` and ``dirigent executions ...``: a running server's workflows.

Every command talks to the REST API through :mod:`dirigent.cli.client`; it
prints a table by default and the server's JSON with ``--json``. Exit codes:
0 done, 1 the server refused or could not be reached, 2 bad usage.

This module must never open the store or build an engine: the server owns them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dirigent.asl.jsonload import load_json_text
from dirigent.cli.client import Client, RemoteError, add_connection_arguments, arn_path, table
from dirigent.errors import DefinitionError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workflows = subparsers.add_parser(
        "workflows", help="workflows on a running server", description="Workflows on a server."
    )
    commands = workflows.add_subparsers(dest="workflows_command", metavar="COMMAND")
    commands.required = True
    deploy = commands.add_parser(
        "deploy",
        help="create or update state machines from ASL files",
        description="Create or update one state machine per file; the name is the file's "
        "stem without .asl (order.asl.json deploys 'order').",
    )
    deploy.add_argument("files", nargs="+", metavar="FILE")
    deploy.add_argument("--type", choices=("STANDARD", "EXPRESS"), default="STANDARD")
    deploy.add_argument("--role-arn", default="", help="role ARN recorded with the machine")
    add_connection_arguments(deploy)
    deploy.set_defaults(handler=cmd_deploy)

    executions = subparsers.add_parser(
        "executions", help="executions on a running server", description="Executions on a server."
    )
    commands = executions.add_subparsers(dest="executions_command", metavar="COMMAND")
    commands.required = True
    start = commands.add_parser("start", help="start an execution")
    start.add_argument("state_machine", help="state machine name")
    start.add_argument("--name", help="execution name (default: generated)")
    source = start.add_mutually_exclusive_group()
    source.add_argument("--input", help="input as JSON text")
    source.add_argument("--input-file", help="a file holding the input")
    start.set_defaults(handler=cmd_start)
    listing = commands.add_parser("list", help="list executions, newest first")
    listing.add_argument("--state-machine", help="only this state machine's")
    listing.add_argument("--status", help="only executions with this status")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=cmd_list)
    for name, summary, handler in (
        ("describe", "show an execution", cmd_describe),
        ("history", "show an execution's history events", cmd_history),
        ("stop", "stop a running execution", cmd_stop),
        ("redrive", "redrive a failed execution from where it failed", cmd_redrive),
    ):
        parser = commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:]
        )
        parser.add_argument("execution_arn")
        if name == "stop":
            parser.add_argument("--error")
            parser.add_argument("--cause")
        parser.set_defaults(handler=handler)
    for parser in (start, listing, *commands.choices.values()):
        if not any(a.dest == "server" for a in parser._actions):
            add_connection_arguments(parser)


def _run(args: argparse.Namespace, work: Any) -> int:
    try:
        return int(work(Client.from_args(args)))
    except RemoteError as exc:
        print(f"dirigent: {exc}", file=sys.stderr)
        return 1


def _print(args: argparse.Namespace, value: Any, columns: list[str] | None = None) -> None:
    if args.json:
        print(json.dumps(value, indent=2))
    elif columns is None:
        for key, item in value.items():
            shown = json.dumps(item) if isinstance(item, dict | list) else item
            print(f"{key}: {shown if shown is not None else '-'}")
    else:
        print(table(value, columns))


def _machine_name(path: Path) -> str:
    name = path.name
    for suffix in (".json", ".asl"):
        name = name.removesuffix(suffix)
    return name


def cmd_deploy(args: argparse.Namespace) -> int:
    documents = []
    for file in args.files:
        path = Path(file)
        try:
            documents.append((path, load_json_text(path.read_bytes())))
        except OSError as exc:
            print(
                f"dirigent workflows deploy: {file}: cannot read: {exc.strerror}", file=sys.stderr
            )
            return 2
        except DefinitionError as exc:
            print(f"dirigent workflows deploy: {file}: {exc.diagnostics[0]}", file=sys.stderr)
            return 2

    def work(client: Client) -> int:
        results = []
        for path, definition in documents:
            deployed = client.request(
                "POST",
                "/state-machines",
                {
                    "name": _machine_name(path),
                    "definition": definition,
                    "type": args.type,
                    "roleArn": args.role_arn,
                },
            )
            results.append(
                {
                    "file": str(path),
                    "name": deployed["name"],
                    "action": "created" if deployed["created"] else "updated",
                    "stateMachineArn": deployed["stateMachineArn"],
                }
            )
        _print(args, results, ["name", "action", "stateMachineArn"])
        return 0

    return _run(args, work)


def cmd_start(args: argparse.Namespace) -> int:
    text = args.input
    if args.input_file:
        try:
            text = Path(args.input_file).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"dirigent executions start: {exc}", file=sys.stderr)
            return 2
    try:
        execution_input = json.loads(text) if text is not None else {}
    except ValueError as exc:
        print(f"dirigent executions start: the input is not JSON: {exc}", file=sys.stderr)
        return 2

    def work(client: Client) -> int:
        body: dict[str, Any] = {"input": execution_input}
        if args.name:
            body["name"] = args.name
        started = client.request("POST", f"/state-machines/{args.state_machine}/executions", body)
        _print(args, started)
        return 0

    return _run(args, work)


def cmd_list(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        listed = client.request(
            "GET",
            "/executions",
            query={"stateMachine": args.state_machine, "status": args.status, "limit": args.limit},
        )
        if args.json:
            _print(args, listed)
        else:
            rows = [
                {**e, "machine": e["stateMachineArn"].rsplit(":", 1)[-1]}
                for e in listed["executions"]
            ]
            _print(args, rows, ["name", "machine", "status", "startDate", "stopDate"])
        return 0

    return _run(args, work)


def cmd_describe(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        _print(args, client.request("GET", f"/executions/{arn_path(args.execution_arn)}"))
        return 0

    return _run(args, work)


def cmd_history(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        events: list[dict[str, Any]] = []
        token = None
        while True:
            page = client.request(
                "GET",
                f"/executions/{arn_path(args.execution_arn)}/history",
                query={"nextToken": token},
            )
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        if args.json:
            _print(args, {"events": events})
            return 0
        rows = []
        for event in events:
            details: dict[str, Any] = next(
                (v for k, v in event.items() if k.endswith("EventDetails")), {}
            )
            rows.append({**event, "state": details.get("name"), "error": details.get("error")})
        _print(args, rows, ["id", "timestamp", "type", "state", "error"])
        return 0

    return _run(args, work)


def cmd_stop(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        body = {k: v for k, v in (("error", args.error), ("cause", args.cause)) if v}
        _print(
            args, client.request("POST", f"/executions/{arn_path(args.execution_arn)}/stop", body)
        )
        return 0

    return _run(args, work)


def cmd_redrive(args: argparse.Namespace) -> int:
    def work(client: Client) -> int:
        _print(args, client.request("POST", f"/executions/{arn_path(args.execution_arn)}/redrive"))
        return 0

    return _run(args, work)
