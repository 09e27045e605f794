"""The composition root: settings, then the store, the engine, credentials and the API server.

Everything with a lifetime is created here and nowhere else, so tests and
tools can build the same graph with other parts (another store, a fake
clock). :func:`serve` runs ``dirigent server``: this process binds the
port, opens the store and runs the engine; it starts the HTTP front as a
process of its own (:mod:`dirigent.api.front`) handed the bound socket and
one end of a socketpair, keeps it running, and on SIGINT or SIGTERM stops the
front first (requests in flight finish against a running engine), then the
engine, then the store.

This module must never hold a module-level instance of anything.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import uvloop

from dirigent.api import ApiContext
from dirigent.api.auth import Principal, Principals
from dirigent.api.backend import LocalBackend
from dirigent.api.feed import Feed, FeedStore
from dirigent.api.keyfile import (
    ENV_ADMIN,
    ENV_KEY,
    ENV_SECRET,
    ENV_TOKEN,
    KeyFileRefresh,
    load_principals,
)
from dirigent.api.link import EngineEnd, serve_front
from dirigent.api.server import GRACEFUL_SHUTDOWN_SECONDS, start_http
from dirigent.engine import Engine, EngineSettings, FunctionRegistry
from dirigent.engine.errors import ServiceError, StateMachineAlreadyExists
from dirigent.errors import DirigentError, ManifestError
from dirigent.manifest import Manifest
from dirigent.mesh.config import MeshPolicy
from dirigent.mesh.node import AppMesh
from dirigent.runtime.companion import Companion, CompanionLaunch
from dirigent.runtime.host import ServiceDirectory
from dirigent.store import open_store

DEFAULT_DATA_DIR = Path(".dirigent")
#: failed starts of the HTTP front in a row after which the server stops
FRONT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    #: ``None``: ``sqlite:///DATA_DIR/dirigent.db``
    store_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    region: str = "us-east-1"
    account: str = "123456789012"
    #: function name -> ``module:attribute``, for Lambda-style Task states
    functions: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "warning"


def store_url(settings: ServerSettings) -> str:
    return settings.store_url or f"sqlite:///{settings.data_dir / 'dirigent.db'}"


class ListenError(DirigentError):
    """The server's address cannot be listened on (taken, not ours, not an address)."""


class FrontFailed(DirigentError):
    """The HTTP front failed to start again and again; the server stopped."""


#: an address that cannot be bound here (IPv6 turned off, not this host's): skipped
#: when another address of the same name can be
_UNAVAILABLE = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


def listen(host: str, port: int) -> list[socket.socket]:
    """One listening socket per address ``host`` names (``localhost``: IPv4 and IPv6).

    ``""`` means every address. With port 0 the first socket's port serves
    for the others, so the server has one port.
    """
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    listeners: list[socket.socket] = []
    skipped: OSError | None = None
    try:
        for family, kind, proto, _, address in dict.fromkeys(
            (family, kind, proto, "", address) for family, kind, proto, _, address in addresses
        ):
            if listeners and port == 0:
                address = (address[0], listeners[0].getsockname()[1], *address[2:])
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                if exc.errno not in _UNAVAILABLE:
                    raise
                skipped = exc
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    # Each family gets its own socket, as asyncio's servers do.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(2048)
            except OSError as exc:
                sock.close()
                if exc.errno not in _UNAVAILABLE:
                    raise
                skipped = exc
                continue
            listeners.append(sock)
        if not listeners:
            raise skipped or OSError(f"{host} names no address")
    except OSError as exc:
        for sock in listeners:
            sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return listeners


def listening_url(listeners: list[socket.socket]) -> str:
    """Where the server answers, as a URL: the first address, with its real port."""
    host, port = listeners[0].getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    settings: ServerSettings, environ: Mapping[str, str] | None = None, out: TextIO = sys.stdout
) -> None:
    environ = os.environ if environ is None else environ
    # Bound first: a taken port fails at once, before credentials or a store exist.
    listeners = listen(settings.host, settings.port)
    try:
        principals, created = load_principals(settings.data_dir, environ)
        store = open_store(store_url(settings))
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    # The engine writes through the feed's store, which tells the dashboard's
    # live stream (GET /api/v1/events) about each committed history event.
    feed = Feed()
    engine = Engine(
        FeedStore(store, feed),
        settings=EngineSettings(region=settings.region, account=settings.account),
        functions=FunctionRegistry(dict(settings.functions)),
    )
    backend = LocalBackend(engine, feed)
    if created is not None:
        print(f"created admin credentials in {created} (mode 0600)", file=out)
        print(
            f"  AWS CLI: AWS_SHARED_CREDENTIALS_FILE={created.parent / 'aws-credentials'}",
            file=out,
        )
    else:
        print(f"credentials: {len(principals)} principal(s) loaded", file=out)
    engine.start()
    try:
        print(f"dirigent server listening on {listening_url(listeners)}", file=out)
        print(f"store: {store.url}", file=out, flush=True)
        front_env = front_environment(environ, principals)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run_with_front(settings, front_env, listeners, backend))
    finally:
        engine.stop()
        backend.close()
        store.close()
        for sock in listeners:
            sock.close()


def front_environment(environ: Mapping[str, str], principals: list[Principal]) -> dict[str, str]:
    """The front's environment: ours, with the admin's token when the variables
    define the admin without one (it was made up here, and both processes
    must accept the same one)."""
    env = dict(environ)
    # Isolated from the working directory: `-m` would put it first on the
    # front's import path, where a stray `secrets.py` would shadow the stdlib.
    env["PYTHONSAFEPATH"] = "1"
    defined = environ.get(ENV_KEY) and environ.get(ENV_SECRET)
    admin = next((p for p in principals if p.name == ENV_ADMIN), None)
    if defined and not environ.get(ENV_TOKEN) and admin is not None:
        env[ENV_TOKEN] = admin.token
    return env


async def _run_with_front(
    settings: ServerSettings,
    env: Mapping[str, str],
    listeners: list[socket.socket],
    backend: LocalBackend,
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    gave_up = False
    links: set[asyncio.Task[EngineEnd]] = set()
    fds = [sock.fileno() for sock in listeners]

    def prepare() -> CompanionLaunch:
        # A fresh socketpair per start: a restarted front gets a clean link,
        # and the old one's answers still in flight go nowhere.
        ours, theirs = socket.socketpair()
        task = loop.create_task(serve_front(ours, backend, on_ready=front.mark_ready))
        links.add(task)
        task.add_done_callback(links.discard)
        argv = [sys.executable, "-m", "dirigent.api.front", "--link-fd", str(theirs.fileno())]
        for fd in fds:
            argv += ["--listen-fd", str(fd)]
        argv += ["--data-dir", str(settings.data_dir.resolve())]
        argv += ["--region", settings.region, "--account", settings.account]
        argv += ["--log-level", settings.log_level]
        return CompanionLaunch(tuple(argv), (*fds, theirs.fileno()), env, theirs.close)

    def give_up() -> None:
        nonlocal gave_up
        gave_up = True
        stopping.set()

    front = Companion("API front", prepare, give_up_after=FRONT_ATTEMPTS, on_give_up=give_up)

    def on_signal() -> None:
        if stopping.is_set():
            front.kill()  # a second Ctrl-C: stop now, requests in flight or not
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    front.start()
    await stopping.wait()
    # New connections are refused from now on, not left waiting in a backlog
    # nobody will accept from (the front closes its copies as it stops).
    for sock in listeners:
        sock.close()
    # The front stops accepting first; then polls still in flight end with no task.
    front.signal_stop()
    backend.wind_down()
    await front.stop(patience=GRACEFUL_SHUTDOWN_SECONDS + 5)
    if gave_up:
        raise FrontFailed(f"the API front failed to start {FRONT_ATTEMPTS} times in a row")


# --------------------------------------------------------------------------- dirigent up


def workflow_name(path: Path) -> str:
    """``orders/order.asl.json`` deploys as the state machine ``order``."""
    name = path.name
    for suffix in (".asl.json", ".asl.yaml", ".json"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return path.stem


def deploy_workflows(engine: Engine, app_dir: Path, paths: Sequence[str], role: str) -> list[str]:
    """Create or update one state machine per ASL file; returns their ARNs.

    An unchanged definition is left alone, so a restart does not bump revisions.
    """
    arns = []
    for relative in paths:
        path = app_dir / relative
        try:
            definition = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"workflows: {path}: cannot read it: {exc.strerror}") from exc
        name = workflow_name(path)
        arn = engine.arns.state_machine(name)
        request = {"name": name, "definition": definition, "roleArn": role}
        try:
            try:
                engine.catalog.create_state_machine(request)
            except StateMachineAlreadyExists:
                engine.catalog.update_state_machine(
                    {"stateMachineArn": arn, "definition": definition}
                )
        except ServiceError as exc:
            raise ManifestError(f"workflows: {path}: {exc.message}") from exc
        arns.append(arn)
    return arns


def service_resolver(
    services: ServiceDirectory, names: set[str], mesh: AppMesh | None = None
) -> Callable[[str], tuple[str, str | None]]:
    """How the engine reaches ``http://payments/charge``.

    With the mesh, through the engine's own outbound listener (identity
    ``engine``, so policies can allow or deny it, with retries, timeouts and
    mTLS). Without it, straight to a ready ``payments`` replica. Hosts that do
    not name one of the app's services are called as they are; a service with
    no ready replica keeps its name, so the call fails as unreachable
    (``States.Http.Socket``) and the state's Retry decides what happens next.
    """

    def resolve(endpoint: str) -> tuple[str, str | None]:
        parts = urlsplit(endpoint)
        if parts.hostname not in names or parts.port is not None:
            return endpoint, None
        if mesh is not None:
            return endpoint, mesh.engine_proxy()
        port = services.pick(parts.hostname)
        if port is None:
            return endpoint, None
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}")), None

    return resolve


class ControlPlane:
    """The engine and its APIs, run by ``dirigent up`` beside the app's services."""

    def __init__(
        self,
        manifest: Manifest,
        app_dir: Path,
        data_dir: Path,
        settings: ServerSettings,
        out: TextIO,
        *,
        mesh: AppMesh | None = None,
    ) -> None:
        self.mesh = mesh
        self.manifest = manifest
        self.app_dir = app_dir
        self.settings = settings
        self.data_dir = data_dir
        self.out = out
        self._running: Any = None
        self._engine: Engine | None = None
        self._context: ApiContext | None = None
        self._backend: LocalBackend | None = None
        self._store: Any = None
        self.workflows: list[str] = []

    async def start(self, services: ServiceDirectory) -> None:
        # Functions are the app's own modules, named relative to its directory.
        if str(self.app_dir) not in sys.path:
            sys.path.insert(0, str(self.app_dir))
        principals, created = load_principals(self.data_dir, os.environ)
        self._store = open_store(
            self.settings.store_url or f"sqlite:///{self.data_dir / 'dirigent.db'}"
        )
        feed = Feed()
        self._engine = Engine(
            FeedStore(self._store, feed),
            settings=EngineSettings(region=self.settings.region, account=self.settings.account),
            functions=FunctionRegistry(
                {name: str(ref) for name, ref in self.manifest.functions.items()}
            ),
            resolve=service_resolver(services, set(self.manifest.services), self.mesh),
        )
        self.workflows = deploy_workflows(
            self._engine,
            self.app_dir,
            self.manifest.workflows,
            f"arn:aws:iam::{self.settings.account}:role/{self.manifest.app}",
        )
        self._engine.start()
        refresh = KeyFileRefresh(self.data_dir, principals)
        self._backend = LocalBackend(self._engine, feed)
        self._context = ApiContext(
            self._backend, Principals(principals, refresh), self._engine.arns
        )
        self._running = await start_http(
            self._context, self.settings.host, self.settings.port, self.settings.log_level
        )
        if created is not None:
            print(f"dirigent: created admin credentials in {created} (mode 0600)", file=self.out)
        print(
            f"dirigent: API on http://{self.settings.host}:{self.settings.port}, "
            f"{len(self.workflows)} workflow(s) deployed, store {self._store.url}",
            file=self.out,
            flush=True,
        )

    async def stop(self) -> None:
        if self._running is not None:
            # Stop accepting first; then polls still in flight end with no task.
            self._running.begin_stop()
        if self._backend is not None:
            self._backend.wind_down()
        if self._running is not None:
            await self._running.stop()
        if self._engine is not None:
            # Off the event loop: the mesh on this loop carries the engine's
            # last HTTP tasks, which must be able to finish while it stops.
            await asyncio.to_thread(self._engine.stop)
        if self._context is not None:
            self._context.close()
        if self._store is not None:
            self._store.close()

    def describe(self) -> dict[str, object]:
        return {
            "api": f"http://{self.settings.host}:{self.settings.port}",
            "workflows": list(self.workflows),
            "store": self._store.url if self._store is not None else None,
        }


def control_plane_factory(
    settings: ServerSettings,
) -> Callable[[Manifest, Any, TextIO], Sequence[Any]]:
    """What ``dirigent up`` runs beside the services: the mesh (when the manifest
    has a ``mesh`` section) and the control plane, started in that order so the
    engine can call through the mesh from its first task."""

    def build(manifest: Manifest, paths: Any, out: TextIO) -> Sequence[Any]:
        policy = manifest.extensions.get("mesh")
        mesh = (
            AppMesh(manifest.app, list(manifest.services), policy)
            if isinstance(policy, MeshPolicy)
            else None
        )
        plane = ControlPlane(manifest, paths.app_dir, paths.state_dir, settings, out, mesh=mesh)
        return [mesh, plane] if mesh is not None else [plane]

    return build
