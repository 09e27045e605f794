"""``dirigent up|ps|logs|scale|restart|apply|down``: run an app's services and steer them.

``up`` runs the control plane (in the foreground, or ``--detach``-ed); every
other command talks to it over the control socket in ``.dirigent/`` next to
the manifest, except ``logs``, which reads the log files directly so logs
stay readable after ``down``. Exit codes: 0 done, 1 it could not be done
(nothing running, an unknown service, an invalid manifest, a failing
service after ``up --detach``), 2 bad usage.

This module must never carry out anything itself: it parses, calls
:mod:`dirigent.runtime` and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

from dirigent.errors import DirigentError
from dirigent.manifest import InvalidManifest, load_manifest
from dirigent.mesh.section import MESH_SECTIONS
from dirigent.runtime.channel import NotRunning, call
from dirigent.runtime.control import (
    Apply,
    Done,
    Down,
    InjectFault,
    ListReplicas,
    Refused,
    Request,
    Restart,
    Scale,
    Status,
)
from dirigent.runtime.host import (
    AlreadyRunning,
    AppPaths,
    CompanionFactory,
    run_up,
    spawn_detached,
)
from dirigent.runtime.logs import Follower, parse_since, read_service
from dirigent.runtime.procfs import start_ticks

#: seconds a command waits for the running ``up`` to answer
ANSWER_TIMEOUT = 30.0
#: ``down`` waits for every grace period; this only bounds a wedged control plane
DOWN_TIMEOUT = 600.0
#: ``up --detach`` calls the app started once it stayed settled this long without a restart:
#: a replica without a readiness probe counts as ready the moment it is spawned, and one that
#: dies at start must not pass for a started service
SETTLE_SECONDS = 1.0
_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: _Subparsers) -> None:
    up = _command(subparsers, "up", "run the app's services (foreground; --detach for background)")
    up.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up.add_argument(
        "--timeout", type=float, default=120.0, help="with --detach: seconds to wait for readiness"
    )
    plane = up.add_argument_group("control plane (the engine and its APIs)")
    plane.add_argument("--api-host", default="127.0.0.1", help="API address (%(default)s)")
    plane.add_argument("--api-port", type=int, default=8080, help="API port (%(default)s)")
    plane.add_argument("--store", help="store URL (default: sqlite under .dirigent/)")
    plane.add_argument(
        "--no-control-plane",
        action="store_true",
        help="run only the services, without the engine and its APIs",
    )
    up.set_defaults(handler=cmd_up)

    ps = _command(subparsers, "ps", "list replicas")
    ps.add_argument("--json", action="store_true", help="print the rows as a JSON array")
    ps.set_defaults(handler=cmd_ps)

    logs = subparsers.add_parser("logs", help="print a service's logs", description="Print the "
                                 "logs of every replica of a service, merged by time.")  # fmt: skip
    logs.add_argument("service")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--since", help="only lines since: 30s, 5m, 2h, 1d or an ISO 8601 time")
    logs.add_argument("--file", default="dirigent.yaml", help="the manifest (default: %(default)s)")
    logs.set_defaults(handler=cmd_logs)

    scale = _command(subparsers, "scale", "run N replicas of a service until the next apply")
    scale.add_argument("service")
    scale.add_argument("replicas", type=_count, metavar="N")
    scale.set_defaults(handler=cmd_scale)

    restart = _command(subparsers, "restart", "replace a service's replicas, rolling")
    restart.add_argument("service")
    restart.set_defaults(handler=cmd_restart)

    fault = _command(subparsers, "fault", "delay or abort a share of a service's requests (mesh)")
    fault.add_argument("service")
    fault.add_argument("--delay", type=float, default=0.0, metavar="SECONDS")
    fault.add_argument(
        "--delay-percent",
        type=float,
        default=100.0,
        metavar="P",
        help="share of requests delayed (default %(default)s)",
    )
    fault.add_argument(
        "--abort",
        type=int,
        default=0,
        metavar="STATUS",
        help="answer this HTTP status instead of the service",
    )
    fault.add_argument(
        "--abort-percent",
        type=float,
        default=100.0,
        metavar="P",
        help="share of requests aborted (default %(default)s)",
    )
    fault.add_argument("--clear", action="store_true", help="remove the service's fault")
    fault.set_defaults(handler=cmd_fault)

    _command(subparsers, "apply", "re-read the manifest; roll out what changed").set_defaults(
        handler=cmd_apply
    )
    _command(subparsers, "down", "stop every replica and the control plane").set_defaults(
        handler=cmd_down
    )


def _command(subparsers: _Subparsers, name: str, summary: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])
    parser.add_argument(
        "-f", "--file", default="dirigent.yaml", help="the manifest (default: %(default)s)"
    )
    return parser


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0")
    return value


def _paths(args: argparse.Namespace) -> AppPaths:
    return AppPaths.for_manifest(Path(args.file))


def _ask(args: argparse.Namespace, request: Request, timeout: float = ANSWER_TIMEOUT) -> Done:
    paths = _paths(args)
    reply = call(paths.app_dir, paths.socket, request, timeout=timeout)
    if isinstance(reply, Refused):
        raise DirigentError(reply.error)
    return reply


def _failing(error: DirigentError) -> int:
    print(f"dirigent: {error}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------- commands


def cmd_up(args: argparse.Namespace) -> int:
    paths = _paths(args)
    try:
        if not args.detach:
            run_up(
                paths,
                sys.stderr,
                None if args.no_control_plane else _control_plane(args),
                MESH_SECTIONS,
            )
            return 0
        # a bad manifest fails here, not in the background
        load_manifest(str(paths.manifest), sections=MESH_SECTIONS)
        try:
            _ask(args, Status())
            raise AlreadyRunning(f"Dirigent is already running for {paths.app_dir}")
        except NotRunning:
            pass
        return _await_detached(args, paths, spawn_detached(paths, _plane_arguments(args)))
    except (InvalidManifest, AlreadyRunning, NotRunning) as exc:
        return _failing(exc)
    except DirigentError as exc:  # the control plane could not start (a bad workflow...)
        return _failing(exc)


def _control_plane(args: argparse.Namespace) -> CompanionFactory:
    # Imported here: the engine and the HTTP stack are only needed by `up`, and
    # every other runtime command (ps, logs...) should start fast.
    from dirigent.app import ServerSettings, control_plane_factory  # noqa: PLC0415

    return control_plane_factory(
        ServerSettings(host=args.api_host, port=args.api_port, store_url=args.store)
    )


def _plane_arguments(args: argparse.Namespace) -> list[str]:
    if args.no_control_plane:
        return ["--no-control-plane"]
    extra = ["--api-host", args.api_host, "--api-port", str(args.api_port)]
    return [*extra, "--store", args.store] if args.store else extra


def _await_detached(args: argparse.Namespace, paths: AppPaths, pid: int) -> int:
    deadline = time.monotonic() + args.timeout
    body: Mapping[str, object] = {}
    settled_since: tuple[float, int] | None = None  # when, and the restarts counted then
    while time.monotonic() < deadline:
        finished, _status = os.waitpid(pid, os.WNOHANG)
        if finished:
            log = _tail(paths.detached_log)
            print(f"dirigent: up exited at start:\n{log}", file=sys.stderr)
            return 1
        try:
            body = _ask(args, Status()).body
        except NotRunning:
            body = {}
        if body.get("settled"):
            now, restarts = time.monotonic(), _restarts(body)
            if settled_since is None or settled_since[1] != restarts:
                settled_since = (now, restarts)
            elif now - settled_since[0] >= SETTLE_SECONDS or _failing_services(body):
                break
        else:
            settled_since = None
        time.sleep(0.05)
    for warning in _list(body.get("warnings")):
        print(f"dirigent: warning: {warning}", file=sys.stderr)
    failing = _failing_services(body)
    print(f"dirigent: up in the background, pid {pid}; output in {paths.detached_log}")
    if failing:
        print(f"dirigent: failing: {', '.join(failing)} (see dirigent ps)", file=sys.stderr)
        return 1
    if not body.get("settled"):
        print("dirigent: not every replica is ready yet (see dirigent ps)", file=sys.stderr)
        return 1
    return 0


def _service_infos(body: Mapping[str, object]) -> dict[str, dict[str, object]]:
    services = body.get("services")
    if not isinstance(services, dict):
        return {}
    return {name: info for name, info in services.items() if isinstance(info, dict)}


def _failing_services(body: Mapping[str, object]) -> list[str]:
    return sorted(name for name, info in _service_infos(body).items() if info.get("failing"))


def _restarts(body: Mapping[str, object]) -> int:
    counts = (info.get("restarts") for info in _service_infos(body).values())
    return sum(count for count in counts if isinstance(count, int))


def cmd_ps(args: argparse.Namespace) -> int:
    try:
        rows = _list(_ask(args, ListReplicas()).body.get("replicas"))
    except DirigentError as exc:
        return _failing(exc)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("REPLICA", "PID", "PORT", "STATE", "READY", "RESTARTS", "UPTIME", "CPU%", "RSS")
    table = [header] + [_row(row) for row in rows if isinstance(row, dict)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return 0


def _row(row: dict[str, object]) -> tuple[str, ...]:
    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    uptime, rss = row.get("uptime_s"), row.get("rss")
    return (
        shown(row.get("replica")),
        shown(row.get("pid")),
        shown(row.get("port")),
        shown(row.get("state")),
        "yes" if row.get("ready") else "no",
        shown(row.get("restarts")),
        f"{uptime:.0f}s" if isinstance(uptime, int | float) else "-",
        shown(row.get("cpu")),
        f"{rss / 2**20:.1f}Mi" if isinstance(rss, int) else "-",
    )


def cmd_logs(args: argparse.Namespace) -> int:
    paths = _paths(args)
    try:
        since = parse_since(args.since, time.time()) if args.since else None
    except ValueError:
        print(f"dirigent: --since {args.since!r}: expected 30s, 5m, 2h, 1d or an ISO 8601 time")
        return 2
    try:
        if not args.follow:
            lines = read_service(paths.logs, args.service, since)
            if not lines and not any(paths.logs.glob(f"{args.service}-*.log*")):
                raise DirigentError(f"no logs of a service {args.service!r} in {paths.logs}")
            for line in lines:
                print(f"{line.replica} | {line.text}")
            return 0
        follower = Follower(paths.logs, args.service)
        try:
            for line in follower.history(since):
                print(f"{line.replica} | {line.text}", flush=True)
            for line in follower.lines():
                print(f"{line.replica} | {line.text}", flush=True)
        finally:
            follower.close()
    except DirigentError as exc:
        return _failing(exc)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    try:
        _ask(args, Scale(args.service, args.replicas))
    except DirigentError as exc:
        return _failing(exc)
    print(f"dirigent: {args.service} scaled to {args.replicas} (until the next apply)")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    try:
        _ask(args, Restart(args.service))
    except DirigentError as exc:
        return _failing(exc)
    print(f"dirigent: rolling restart of {args.service} started (see dirigent ps)")
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    if args.clear:
        request = InjectFault(args.service)
    else:
        if not args.delay and not args.abort:
            print("dirigent fault: give --delay, --abort or --clear", file=sys.stderr)
            return 2
        request = InjectFault(
            args.service,
            args.delay,
            args.delay_percent if args.delay else 0.0,
            args.abort,
            args.abort_percent if args.abort else 0.0,
        )
    try:
        _ask(args, request)
    except DirigentError as exc:
        return _failing(exc)
    what = "cleared" if args.clear else "in place until the next apply"
    print(f"dirigent: fault on {args.service} {what}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    try:
        body = _ask(args, Apply()).body
    except DirigentError as exc:
        return _failing(exc)
    changed = [
        f"{what} {', '.join(str(name) for name in _list(body.get(what)))}"
        for what in ("added", "removed", "rolled")
        if _list(body.get(what))
    ]
    print(f"dirigent: applied; {'; '.join(changed) if changed else 'nothing changed'}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    try:
        body = _ask(args, Down(), timeout=DOWN_TIMEOUT).body
    except DirigentError as exc:
        return _failing(exc)
    pid = body.get("pid")
    if isinstance(pid, int):
        _await_exit(pid, patience=10.0)
    print("dirigent: down")
    return 0


def _await_exit(pid: int, *, patience: float) -> None:
    """Until ``pid`` has exited (a zombie counts: it runs nothing), or ``patience`` runs out."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and start_ticks(pid) is not None:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.02)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []
