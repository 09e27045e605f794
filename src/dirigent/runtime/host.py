"""``dirigent up``'s process: one app directory's control plane, and how to start it detached.

:func:`run_up` takes the app's lock, sweeps what a crashed earlier run left
(:mod:`dirigent.runtime.ledger`), then runs a :class:`Host`: the supervisor,
the control socket the other commands talk to, and the record of running
replicas. Everything lives in ``.dirigent/`` next to the manifest::

    .dirigent/up.lock        held (flock) while an ``up`` runs; holds its pid
    .dirigent/control.sock   the control channel
    .dirigent/replicas.json  what runs now, for the next ``up`` after a crash
    .dirigent/logs/          one log per replica slot
    .dirigent/up.log         the output of a detached ``up``

Signal handlers only ask the supervisor to stop; the loop does the work.
This module must never decide about replicas itself (the supervisor's
reconcile does) nor run two control planes for one directory (the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from dirigent.errors import DirigentError
from dirigent.manifest import InvalidManifest, Manifest, SectionParser, Service, load_manifest
from dirigent.runtime import cgroups, ledger
from dirigent.runtime.channel import serve
from dirigent.runtime.control import (
    Apply,
    Done,
    Down,
    InjectFault,
    ListReplicas,
    Refused,
    Reply,
    Request,
    Restart,
    Scale,
    Status,
)
from dirigent.runtime.procfs import start_ticks
from dirigent.runtime.supervisor import Supervisor, Traffic

CGROUP_ROOT = Path("/sys/fs/cgroup")


class ServiceDirectory:
    """Where each service's ready replicas listen, readable from any thread.

    The host refreshes it from the supervisor; the control plane reads it to
    reach services by name (``http://payments/charge``) until the mesh routes
    that traffic. Readers get an immutable snapshot, so no lock is held while
    they use it.
    """

    def __init__(self) -> None:
        self._ready: dict[str, tuple[int, ...]] = {}
        self._turn = 0

    def update(self, ready: dict[str, tuple[int, ...]]) -> None:
        self._ready = ready  # one reference swap: readers see old or new, never half

    def ports(self, service: str) -> tuple[int, ...]:
        return self._ready.get(service, ())

    def pick(self, service: str) -> int | None:
        """A ready replica's port, taking turns between replicas."""
        ports = self.ports(service)
        if not ports:
            return None
        self._turn += 1
        return ports[self._turn % len(ports)]


class Companion(Protocol):
    """Something that runs beside the services for the app's lifetime (the control plane).

    Started before the first replica and stopped after the last one, so the
    engine and its API are up while services start and still up while they drain.
    """

    async def start(self, services: ServiceDirectory) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> dict[str, object]: ...


@runtime_checkable
class Steerable(Protocol):
    """A companion that follows ``apply`` and run-time fault requests (the mesh)."""

    def apply_manifest(self, manifest: Manifest) -> None: ...

    def inject_fault(self, fault: InjectFault) -> str | None:
        """Carry the fault out; a reason when it cannot be."""
        ...


CompanionFactory = Callable[[Manifest, "AppPaths", TextIO], Sequence[Companion]]


class AlreadyRunning(DirigentError):
    """Another ``dirigent up`` holds the app directory's lock."""


@dataclass(frozen=True, slots=True)
class AppPaths:
    manifest: Path
    app_dir: Path
    state_dir: Path

    @classmethod
    def for_manifest(cls, manifest: Path) -> AppPaths:
        manifest = manifest.absolute()
        return cls(manifest, manifest.parent, manifest.parent / ".dirigent")

    @property
    def socket(self) -> Path:
        return self.state_dir / "control.sock"

    @property
    def lock(self) -> Path:
        return self.state_dir / "up.lock"

    @property
    def records(self) -> Path:
        return self.state_dir / "replicas.json"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def detached_log(self) -> Path:
        return self.state_dir / "up.log"


@contextlib.contextmanager
def app_lock(paths: AppPaths) -> Iterator[None]:
    """Hold the app's lock for the block; the kernel drops it if this process dies."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(
                f"Dirigent is already running for {paths.app_dir} (pid {holder}); "
                "stop it with dirigent down"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def run_up(
    paths: AppPaths,
    out: TextIO,
    companions: CompanionFactory | None = None,
    sections: Mapping[str, SectionParser] | None = None,
) -> None:
    """Run the app in this process until it is stopped (a signal or ``dirigent down``).

    ``sections`` reads the manifest's extension sections (the mesh's); the
    composition root passes them, so the runtime needs to know none of them.
    """
    sections = sections or {}
    with app_lock(paths):
        manifest = load_manifest(str(paths.manifest), sections=sections)
        grace = max((s.stop.grace_period for s in manifest.services.values()), default=10.0)
        swept = ledger.sweep(paths.records, str(paths.state_dir), grace=grace)
        if swept:
            print(f"dirigent: stopped {swept} process(es) left by an earlier run", file=out)
        beside = companions(manifest, paths, out) if companions is not None else ()
        asyncio.run(Host(paths, manifest, out, beside, sections).run())


def spawn_detached(paths: AppPaths, extra: Sequence[str] = ()) -> int:
    """Start ``dirigent up`` in its own session, output to ``up.log``; returns its pid."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "dirigent.cli.main", "up", "-f", str(paths.manifest), *extra]
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(paths.detached_log), flags, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # posix_spawn rather than Popen: nobody will wait for this child in this process, and
    # setsid keeps it out of the terminal's process group (no Ctrl-C, no SIGHUP).
    return os.posix_spawn(sys.executable, argv, dict(os.environ), file_actions=actions, setsid=True)


class Host:
    """The running control plane of one app: supervisor, control socket, replica records."""

    def __init__(
        self,
        paths: AppPaths,
        manifest: Manifest,
        out: TextIO,
        companions: Sequence[Companion] = (),
        sections: Mapping[str, SectionParser] | None = None,
    ) -> None:
        self._sections = sections or {}
        self._paths, self._manifest, self._out = paths, manifest, out
        self._companions = tuple(companions)
        self.directory = ServiceDirectory()
        self._warned: set[str] = set()
        self.warnings: list[str] = []
        self._ticks: dict[int, int] = {}
        self._cgroups: cgroups.CgroupTree | str | None = None
        self._supervisor = Supervisor(
            manifest,
            base_dir=paths.app_dir,
            log_dir=paths.logs,
            uniform=random.Random().random,
            inherited_env={**os.environ, ledger.MARKER: str(paths.state_dir)},
            on_change=self._record,
            cgroup_for=self._cgroup_for,
            # A companion that carries the app's traffic (the mesh) hears about
            # readiness and gives replicas its environment.
            traffic=next((c for c in self._companions if isinstance(c, Traffic)), None),
        )
        self._stopped: asyncio.Event | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._check_limits(self._manifest)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._supervisor.request_stop)
        started: list[Companion] = []
        try:
            for companion in self._companions:
                await companion.start(self.directory)
                started.append(companion)
        except BaseException:
            for companion in reversed(started):
                await companion.stop()
            raise
        server = await serve(self._paths.socket, self._handle)
        refresher = asyncio.create_task(self._refresh_directory())
        counts = ", ".join(f"{n} x{s.replicas}" for n, s in self._manifest.services.items())
        print(f"dirigent: {self._manifest.app} up ({counts}), pid {os.getpid()}", file=self._out)
        self._out.flush()
        try:
            await self._supervisor.run()
        finally:
            self._stopped.set()
            refresher.cancel()
            await server.close()
            for companion in reversed(started):
                await companion.stop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            with contextlib.suppress(FileNotFoundError):
                self._paths.records.unlink()
            if isinstance(self._cgroups, cgroups.CgroupTree):
                self._cgroups.release_all()
            print(f"dirigent: {self._manifest.app} down", file=self._out)
            self._out.flush()

    async def _handle(self, request: Request) -> Reply:
        supervisor = self._supervisor
        named = request.service if isinstance(request, Scale | Restart | InjectFault) else None
        if named is not None and named not in supervisor.services():
            known = ", ".join(sorted(supervisor.services())) or "none"
            return Refused(f"no service {named!r} in {self._manifest.app} (have: {known})")
        match request:
            case Status():
                return Done(self._status())
            case ListReplicas():
                return Done({"replicas": [asdict(row) for row in supervisor.replicas()]})
            case Scale(service, replicas):
                supervisor.scale(service, replicas)
                return Done({"service": service, "replicas": replicas})
            case Restart(service):
                supervisor.restart(service)
                return Done({"service": service})
            case Apply():
                try:
                    manifest = load_manifest(str(self._paths.manifest), sections=self._sections)
                except InvalidManifest as exc:
                    return Refused(f"nothing applied: {exc}")
                self._manifest = manifest
                self._check_limits(manifest)
                for companion in self._steerable():
                    companion.apply_manifest(manifest)
                changes = supervisor.apply(manifest)
                return Done(asdict(changes))
            case InjectFault():
                meshes = self._steerable()
                if not meshes:
                    return Refused("faults need the mesh: add a mesh section to the manifest")
                for companion in meshes:
                    reason = companion.inject_fault(request)
                    if reason is not None:
                        return Refused(reason)
                return Done({"service": request.service})
            case Down():
                supervisor.request_stop()
                assert self._stopped is not None  # set before the server listens
                await self._stopped.wait()
                return Done({"pid": os.getpid()})

    async def _refresh_directory(self) -> None:
        while True:
            ready: dict[str, list[int]] = {}
            for row in self._supervisor.replicas():
                if row.ready and row.port is not None:
                    ready.setdefault(row.service, []).append(row.port)
            self.directory.update({name: tuple(ports) for name, ports in ready.items()})
            await asyncio.sleep(0.1)

    def _steerable(self) -> list[Steerable]:
        return [c for c in self._companions if isinstance(c, Steerable)]

    def _status(self) -> dict[str, object]:
        rows = self._supervisor.replicas()
        services: dict[str, object] = {}
        settled = True
        for name, desired in self._supervisor.services().items():
            ready = sum(1 for r in rows if r.service == name and r.ready)
            failing = any(
                r.service == name and r.state in ("backoff", "crash-loop", "exited") for r in rows
            )
            restarts = sum(r.restarts for r in rows if r.service == name)
            services[name] = {
                "desired": desired,
                "ready": ready,
                "failing": failing,
                "restarts": restarts,
            }
            settled = settled and (ready >= desired or failing)
        return {
            "pid": os.getpid(),
            "app": self._manifest.app,
            "manifest": str(self._paths.manifest),
            "services": services,
            "settled": settled,
            "warnings": list(self.warnings),
            "control_plane": [companion.describe() for companion in self._companions],
        }

    def _record(self) -> None:
        records = []
        for replica, pid, port in self._supervisor.processes():
            ticks = self._ticks.get(pid)
            if ticks is None:
                ticks = start_ticks(pid)
                if ticks is None:
                    continue  # already gone; its exit is on its way to the loop
                self._ticks[pid] = ticks
            records.append(
                ledger.ReplicaRecord(
                    replica.service, replica.slot, pid, ticks, port, replica.revision
                )
            )
        alive = {r.pid for r in records}
        self._ticks = {pid: t for pid, t in self._ticks.items() if pid in alive}
        ledger.write_records(self._paths.records, records)

    # ------------------------------------------------------------------ resource limits

    def _check_limits(self, manifest: Manifest) -> None:
        limited = [s for s in manifest.services.values() if _has_limits(s)]
        if limited and self._cgroups is None:
            try:
                own = Path("/proc/self/cgroup").read_text(encoding="ascii")
            except OSError:
                own = ""
            self._cgroups = cgroups.prepare(CGROUP_ROOT, own, manifest.app)
        if isinstance(self._cgroups, str):
            for spec in limited:
                self._warn(spec, self._cgroups)

    def _cgroup_for(self, spec: Service, replica: str) -> str | None:
        if not _has_limits(spec) or not isinstance(self._cgroups, cgroups.CgroupTree):
            return None
        try:
            return str(self._cgroups.limit(replica, spec.resources))
        except OSError as exc:
            self._warn(spec, f"cannot write its cgroup: {exc.strerror or exc}")
            return None

    def _warn(self, spec: Service, reason: str) -> None:
        if spec.name in self._warned:
            return
        self._warned.add(spec.name)
        message = (
            f"{spec.name}: resource limits not applied "
            f"({cgroups.describe(spec.resources)}): {reason}"
        )
        self.warnings.append(message)
        print(f"dirigent: warning: {message}", file=self._out)
        self._out.flush()


def _has_limits(spec: Service) -> bool:
    return spec.resources.memory_bytes is not None or spec.resources.cpu is not None
