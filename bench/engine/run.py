"""Durable engine benchmark: Dirigent against DBOS Transact and Restate, in one run.

Every system runs a workflow of 3 and of 10 sequential steps that do nothing
(Dirigent: Task states calling a Python function; DBOS: ``@DBOS.step``
functions; Restate: ``ctx.run`` blocks in a Python service), 200 executions one
at a time (p50/p99 end-to-end latency) and 200 with 20 in flight (durable
steps per second). Dirigent and DBOS run on SQLite and on PostgreSQL, each in
a database of its own on the same server; Restate keeps its journal in its own
log and RocksDB store. Each side runs in a process of its own, one after the
other, and the whole round is repeated (3 times by default); the table gives
the median of the rounds, with the 1-minute load average of each.

With ``--nodes N`` Dirigent also runs as N engine processes on the same store,
the executions and clients split between them (throughput only): whether
several engines on one machine use its cores better than one.

Durability stays at every system's default: Dirigent's SQLite store in WAL mode
with ``synchronous=FULL``, PostgreSQL with ``synchronous_commit`` on (checked
here), DBOS's SQLite with a rollback journal and ``synchronous=FULL``,
Restate's log with its WAL fsync on.

This script installs what it needs on a fresh machine (the peers into
``bench/engine/.venv-peers`` and ``bench/engine/node_modules``, never into the
project's ``.venv``), and must always leave nothing behind: the processes it
started are stopped, the databases it created dropped, its files removed.
It is not part of the test suite.

usage: .venv/bin/python bench/engine/run.py [--repeats 3] [--count 200] [--no-restate] ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hotspots
import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = HERE / ".venv-peers"
PEERS_PYTHON = PEERS / "bin" / "python"
PEERS_STAMP = PEERS / ".installed"
REQUIREMENTS = HERE / "peers-requirements.txt"
RESTATE_SERVER = HERE / "node_modules" / ".bin" / "restate-server"
RESULTS = HERE / "results"
PROFILE_RATE = 500


def log(message: str) -> None:
    print(f"[bench-engine {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- installing


def ensure_peers() -> None:
    """The peers' virtual environment and the Restate server, installed once."""
    wanted = REQUIREMENTS.read_text()
    if not (PEERS_STAMP.exists() and PEERS_STAMP.read_text() == wanted):
        log("installing DBOS, the Restate SDK, hypercorn and py-spy into bench/engine/.venv-peers")
        if not PEERS_PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        pip = [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        PEERS_STAMP.write_text(wanted)
    if not RESTATE_SERVER.exists():
        npm = shutil.which("npm")
        if npm is None:
            log("npm is missing: Restate cannot be installed")
            return
        log("installing the Restate server (npm ci in bench/engine)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


# ---------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    admin_url: str
    databases: list[str] = field(default_factory=list)

    def _base(self) -> str:
        return self.admin_url.rsplit("/", 1)[0]

    def create(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return f"{self._base()}/{name}"

    def setting(self, name: str) -> str:
        with psycopg.connect(self.admin_url) as connection:
            row = connection.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        return str(row[0]) if row else "?"

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            for name in self.databases:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self.databases.clear()


# ---------------------------------------------------------------------- Restate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Processes:
    """The processes this run started, each in its own process group, stopped at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log_path: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
        self.started.clear()


def start_restate(processes: Processes, workdir: Path) -> int:
    """Start the Restate server and the Python service, register it; the ingress port."""
    if not RESTATE_SERVER.exists():
        raise RuntimeError("the restate-server binary is not installed")
    fabric, ingress, admin, service = (free_port() for _ in range(4))
    config = workdir / "restate.toml"
    config.write_text(
        f'base-dir = "{workdir / "restate-data"}"\n'
        f"bind-port = {fabric}\n"
        "disable-telemetry = true\n"
        f"[ingress]\nbind-port = {ingress}\n"
        f"[admin]\nbind-port = {admin}\n"
    )
    server = processes.start(
        [str(RESTATE_SERVER), "--config-file", str(config), "--listen-mode", "tcp", "--no-logo"],
        workdir / "restate-server.log",
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    processes.start(
        [
            str(PEERS / "bin" / "hypercorn"),
            "--bind",
            f"127.0.0.1:{service}",
            "restate_service:app",
        ],
        workdir / "restate-service.log",
        cwd=HERE,
    )
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"restate-server exited ({server.returncode}); see its log")
        try:
            admin_up = _http("GET", f"http://127.0.0.1:{admin}/health")[0] == 200
            ingress_up = _http("GET", f"http://127.0.0.1:{ingress}/restate/health")[0] == 200
            if admin_up and ingress_up:
                status, answer = _http(
                    "POST",
                    f"http://127.0.0.1:{admin}/deployments",
                    {"uri": f"http://127.0.0.1:{service}"},
                )
                if status in (200, 201):
                    break
                log(f"registering the Restate deployment: {status} {answer[:200]}")
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Restate did not come up within 60 s")
        time.sleep(0.5)
    # The first invocation waits for the partition leaders; make sure it goes through.
    status, answer = _http(
        "POST", f"http://127.0.0.1:{ingress}/Bench/sequence", {"steps": 1, "value": {}}
    )
    if status != 200:
        raise RuntimeError(f"Restate's first invocation answered {status}: {answer[:200]}")
    return ingress


# ---------------------------------------------------------------------- sides


@dataclass(frozen=True)
class Side:
    system: str
    store: str
    argv: list[str]


def export_engine(commit: str, workdir: Path) -> tuple[dict[str, str], str]:
    """The environment that makes Dirigent's sides import ``src/`` as of ``commit``.

    Others may be editing the working tree while the bench runs; an exported
    commit keeps the measured engine whole and named. ``PYTHONPATH`` comes before
    the editable install's path entry, so the export wins.
    """
    revision = subprocess.run(
        ["git", "rev-parse", "--short", commit],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = workdir / "engine-src"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    hotspots.source_root[0] = target / "src"
    return {"PYTHONPATH": str(target / "src")}, revision


def run_side(side: Side, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    completed = subprocess.run(
        side.argv,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"{side.system} on {side.store} failed ({completed.returncode}):\n"
            f"{completed.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


#: seconds from launching the nodes of a several-node run to their common start:
#: enough for each to start, open the store and warm up
NODES_HEADSTART = 4.0


def run_nodes(
    url: str, store: str, nodes: int, args: argparse.Namespace, env: dict[str, str] | None
) -> dict[str, Any]:
    """Dirigent as ``nodes`` engine processes on one store, the executions and the
    clients split evenly between them, all starting at one moment: the
    throughput phase only (latency one at a time is one node's).

    Each node is the one-process side (``dirigent_side.py --start-at``) with its
    share of the clients: how a deployment of several engines on one machine,
    each taking its share of the requests, uses its cores. Steps per second are
    all nodes' steps over the span from the first start to the last stop.
    """
    sizes: dict[str, dict[str, float]] = {}
    for size in args.sizes.split(","):
        start_at = time.time() + NODES_HEADSTART
        argv = [
            sys.executable, "dirigent_side.py", url, "--sizes", size,
            "--count", str(args.count // nodes), "--in-flight", str(args.in_flight // nodes),
            "--warmup", str(args.warmup), "--start-at", f"{start_at:.6f}",
        ]  # fmt: skip
        launched = [
            subprocess.Popen(
                argv,
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **(env or {})},
            )
            for _ in range(nodes)
        ]
        spans = []
        for process in launched:
            out, err = process.communicate(timeout=args.side_timeout)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if process.returncode != 0 or not lines:
                for other in launched:
                    other.kill()
                raise RuntimeError(
                    f"a node on {store} failed ({process.returncode}):\n{err[-2000:]}"
                )
            spans.append(json.loads(lines[-1])["sizes"][size])
        seconds = max(s["last_stop"] for s in spans) - min(s["first_start"] for s in spans)
        executions = sum(s["executions"] for s in spans)
        sizes[size] = {"steps_per_s": executions * int(size) / seconds, "seconds": seconds}
    return {"system": f"dirigent-{nodes}n", "store": store, "sizes": sizes}


def wait_for_quiet(max_load: float, patience: float) -> None:
    deadline = time.monotonic() + patience
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        log(f"1-minute load average {os.getloadavg()[0]:.2f} > {max_load}: waiting")
        time.sleep(15)


def profile_dirigent(
    workdir: Path, count: int, in_flight: int, env: dict[str, str]
) -> dict[str, Any]:
    """Dirigent's SQLite run of the 3-step workflow under py-spy, and its statements."""
    raw = workdir / "profile.txt"
    url = f"sqlite:///{workdir / 'profile.db'}"
    argv = [
        str(PEERS / "bin" / "py-spy"),
        "record",
        "--idle",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(PROFILE_RATE),
        "--output",
        str(raw),
        "--",
        sys.executable,
        "dirigent_side.py",
        url,
        "--sizes",
        "3",
        "--count",
        str(count),
        "--in-flight",
        str(in_flight),
        "--warmup",
        "0",
    ]
    subprocess.run(
        argv, cwd=HERE, capture_output=True, check=True, timeout=300, env={**os.environ, **env}
    )
    rows = hotspots.table(raw.read_text(), PROFILE_RATE, 2 * count)
    counted = run_side(
        Side(
            "dirigent",
            "sqlite",
            [
                sys.executable,
                "dirigent_side.py",
                f"sqlite:///{workdir / 'count.db'}",
                "--count",
                "50",
                "--count-statements",
            ],
        ),
        120,
        env,
    )
    return {"rows": rows, "statements": counted["sizes"]}


# ---------------------------------------------------------------------- the table


def values_of(rounds: list[dict[str, Any]], size: str, key: str) -> list[float]:
    return [r["sizes"][size][key] for r in rounds if key in r["sizes"].get(size, {})]


def median_of(rounds: list[dict[str, Any]], size: str, key: str) -> float | None:
    values = values_of(rounds, size, key)
    return statistics.median(values) if values else None


def range_of(rounds: list[dict[str, Any]], size: str, key: str) -> str:
    """The lowest and highest round, so that a median is read with its spread."""
    values = values_of(rounds, size, key)
    return f"{min(values):,.0f} to {max(values):,.0f}" if values else "-"


def print_report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    loads: list[float],
    sizes: list[str],
    restate_note: str | None,
) -> None:
    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    print()
    print("Durable engine benchmark: medians of", len(loads), "rounds;")
    print("1-minute load average at the start of each round:", ", ".join(f"{x:.2f}" for x in loads))
    for (system, store), rounds in results.items():
        after = ", ".join(f"{r['load']:.2f}" for r in rounds)
        print(f"  ... after {system} on {store}: {after}")
    print()
    header = (
        f"{'system':<10} {'store':<10} {'steps':>5} {'p50 ms':>8} {'p99 ms':>8} {'steps/s':>9}"
        f"  {'rounds':>16}"
    )
    print(header)
    print("-" * len(header))
    for (system, store), rounds in results.items():
        for size in sizes:
            print(
                f"{system:<10} {store:<10} {size:>5} "
                f"{fmt(median_of(rounds, size, 'p50_ms')):>8} "
                f"{fmt(median_of(rounds, size, 'p99_ms')):>8} "
                f"{fmt(median_of(rounds, size, 'steps_per_s'), 0):>9}"
                f"  {range_of(rounds, size, 'steps_per_s'):>16}"
            )
    if ("dirigent", "sqlite") in results:
        print()
        print("Dirigent's p50 to the final commit's return (its stopDate is read before it):")
        for store in ("sqlite", "postgresql"):
            for size in sizes:
                value = median_of(results.get(("dirigent", store), []), size, "committed_p50_ms")
                if value is not None:
                    print(f"  {store:<10} {size:>2} steps: {value:.2f} ms")
    print()
    print("Ratios Dirigent / peer (latency: below 1 is faster; steps/s: above 1 is faster)")
    for (system, store), ours in results.items():
        if not system.startswith("dirigent"):
            continue
        label = f"{system.replace('dirigent', 'Dirigent')} {store}"
        for peer in (("dbos", store), ("restate", "restate")):
            theirs = results.get(peer)
            if not theirs:
                continue
            for size in sizes:
                cells = []
                for key in ("p50_ms", "p99_ms", "steps_per_s"):
                    a, b = median_of(ours, size, key), median_of(theirs, size, key)
                    cells.append(f"{key} {a / b:.2f}" if a and b else f"{key} -")
                # Each round runs every side one after the other: the ratio within
                # a round compares the two under the same moment's load.
                pairs = zip(
                    values_of(ours, size, "steps_per_s"),
                    values_of(theirs, size, "steps_per_s"),
                    strict=False,
                )
                by_round = ", ".join(f"{a / b:.2f}" for a, b in pairs if b)
                if by_round:
                    cells.append(f"by round {by_round}")
                print(f"  {label:<22} / {peer[0]:<7} {size:>2} steps: " + ", ".join(cells))
    if restate_note:
        print()
        print(f"Restate: {restate_note}")


def print_profile(profile: dict[str, Any]) -> None:
    print()
    print(
        "Where Dirigent's time goes (SQLite, 3 steps, py-spy; thread time by category, "
        "% of busy time and ms per execution):"
    )
    for name, share, per_execution in profile["rows"]:
        share_text = "   -  " if share is None else f"{share:5.1f}%"
        print(f"  {name:<48} {share_text} {per_execution:7.3f} ms")
    print("SQL statements per execution, one at a time:")
    for size, kinds in profile["statements"].items():
        listed = ", ".join(f"{kind} {n:.1f}" for kind, n in kinds.items())
        print(f"  {size:>2} steps: {listed}")


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sizes", default="3,10")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL of the PostgreSQL server ('' to skip PostgreSQL)",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="also run Dirigent as this many engine processes on one store (1: not)",
    )
    parser.add_argument("--no-restate", action="store_true")
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--max-load", type=float, default=1.0, help="wait for a lower load")
    parser.add_argument(
        "--load-patience", type=float, default=60.0, help="seconds at most, before each round"
    )
    parser.add_argument("--side-timeout", type=float, default=240.0)
    parser.add_argument(
        "--engine-commit",
        help="measure Dirigent's src/ as of this commit (default: the working tree as it is)",
    )
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    common = [
        "--sizes",
        args.sizes,
        "--count",
        str(args.count),
        "--in-flight",
        str(args.in_flight),
        "--warmup",
        str(args.warmup),
    ]

    ensure_peers()
    processes = Processes()
    postgres = Postgres(args.postgres) if args.postgres else None
    workdir = Path(tempfile.mkdtemp(prefix="dirigent-bench-engine-"))
    restate_note: str | None = None
    engine_env: dict[str, str] = {}
    engine = "working tree"
    try:
        if args.engine_commit:
            engine_env, engine = export_engine(args.engine_commit, workdir)
        log(f"Dirigent's engine: {engine}")
        ingress: int | None = None
        if not args.no_restate:
            try:
                ingress = start_restate(processes, workdir)
                restate_note = "restate-server 1.7.12 (npm), restate-sdk 1.3.0 under hypercorn"
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                restate_note = f"could not start here: {exc}"
                log(f"Restate {restate_note}; reporting DBOS only")
        pg_urls: dict[str, str] = {}
        if postgres is not None:
            suffix = f"{os.getpid()}"
            pg_urls["dirigent"] = postgres.create(f"bench_dirigent_{suffix}")
            if not args.no_dbos:
                pg_urls["dbos"] = postgres.create(f"bench_dbos_{suffix}")
            log(f"PostgreSQL synchronous_commit = {postgres.setting('synchronous_commit')}")

        def sides(round_index: int) -> Iterator[Side]:
            ours = [sys.executable, "dirigent_side.py"]
            peers = [str(PEERS_PYTHON)]
            sqlite_dirigent = f"sqlite:///{workdir / f'dirigent-{round_index}.db'}"
            yield Side("dirigent", "sqlite", [*ours, sqlite_dirigent, *common])
            if not args.no_dbos:
                sqlite_dbos = f"sqlite:///{workdir / f'dbos-{round_index}.sqlite'}"
                yield Side("dbos", "sqlite", [*peers, "dbos_side.py", sqlite_dbos, *common])
            if "dirigent" in pg_urls:
                yield Side("dirigent", "postgresql", [*ours, pg_urls["dirigent"], *common])
            if "dbos" in pg_urls:
                yield Side("dbos", "postgresql", [*peers, "dbos_side.py", pg_urls["dbos"], *common])
            if ingress is not None:
                yield Side("restate", "restate", [*peers, "restate_side.py", str(ingress), *common])

        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        loads: list[float] = []
        for round_index in range(args.repeats):
            # Before every round: others' work, and this bench's own last round, settle.
            wait_for_quiet(args.max_load, args.load_patience)
            loads.append(os.getloadavg()[0])
            log(f"round {round_index + 1} of {args.repeats}, load average {loads[-1]:.2f}")
            for side in sides(round_index):
                log(f"  {side.system} on {side.store}")
                env = engine_env if side.system == "dirigent" else None
                result = run_side(side, args.side_timeout, env)
                result["load"] = os.getloadavg()[0]
                results.setdefault((side.system, side.store), []).append(result)
                if side.system == "dirigent" and args.nodes > 1:
                    log(f"  dirigent on {side.store}, {args.nodes} nodes")
                    url = side.argv[2]
                    if side.store == "sqlite":
                        url = f"sqlite:///{workdir / f'dirigent-nodes-{round_index}.db'}"
                    result = run_nodes(url, side.store, args.nodes, args, env)
                    result["load"] = os.getloadavg()[0]
                    results.setdefault((result["system"], side.store), []).append(result)
        print(f"\nDirigent's engine: {engine}")
        print_report(results, loads, sizes, restate_note)
        profile = None
        if not args.no_profile:
            log("profiling Dirigent on SQLite (py-spy)")
            profile = profile_dirigent(workdir, args.count, args.in_flight, engine_env)
            print_profile(profile)
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (RESULTS / f"engine-{stamp}.json").write_text(
            json.dumps(
                {
                    "machine": {
                        "python": platform.python_version(),
                        "cpus": os.cpu_count(),
                        "platform": platform.platform(),
                    },
                    "engine": engine,
                    "loads": loads,
                    "rounds": [
                        {"system": system, "store": store, **r}
                        for (system, store), rounds in results.items()
                        for r in rounds
                    ],
                    "restate": restate_note,
                    "profile": profile,
                },
                indent=2,
            )
        )
        log(f"figures written to {RESULTS / f'engine-{stamp}.json'}")
    finally:
        processes.stop_all()
        if postgres is not None:
            postgres.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
