"""Read one ``services.<name>`` section, and check what spans services.

Each reader takes a node and its dotted path, records located problems on the
:class:`Reader` and returns the model (or None when the section is unusable).
Cross-service checks (``depends_on`` names and cycles, fixed ports that
collide) run once every service was read.

This module must never raise on a user's mistake, nor read files or the
environment: ``$PORT`` and other variables in a command stay as written and
are expanded by the runtime when it spawns a replica.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode

from dirigent.manifest.autoscale import read_autoscale
from dirigent.manifest.model import (
    Amount,
    Backoff,
    Probe,
    ProbeKind,
    Probes,
    Resources,
    RestartPolicy,
    Rollout,
    Service,
    StopPolicy,
)
from dirigent.manifest.reader import Fields, Reader, line_of

SERVICE_KEYS = (
    "command", "cwd", "env", "env_file", "port", "replicas", "probes", "restart",
    "stop", "resources", "autoscale", "depends_on", "rollout",
)  # fmt: skip
PROBE_KEYS = (
    "http", "tcp", "exec", "period", "timeout", "failure_threshold",
    "success_threshold", "initial_delay",
)  # fmt: skip
SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PERCENT = re.compile(r"^(\d+)%$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
_SIZE_UNITS = {
    None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip
_MILLICORES = re.compile(r"^(\d+)m$")


def read_service(reader: Reader, node: Node, path: str, name: str) -> Service | None:
    fields = reader.fields(node, path, SERVICE_KEYS)
    if fields is None:
        return None
    command_node = fields.get("command")
    if command_node is None:
        reader.error(fields.line, fields.at("command"), "required key is missing")
        command: tuple[str, ...] | None = None
    else:
        command = read_command(reader, command_node, fields.at("command"))

    env: dict[str, str] = {}
    if (env_node := fields.get("env")) is not None:
        env_fields = reader.fields(env_node, fields.at("env"), None)
        for key, value_node in env_fields.nodes.items() if env_fields else ():
            at = fields.at(f"env.{key}")
            if not _ENV_NAME.match(key):
                reader.error(line_of(value_node), at, "invalid environment variable name")
            elif (value := reader.env_value(value_node, at)) is not None:
                env[key] = value

    replicas = _optional_int(reader, fields, "replicas", 1, minimum=0)
    autoscale = None
    if (autoscale_node := fields.get("autoscale")) is not None:
        autoscale = read_autoscale(reader, autoscale_node, fields.at("autoscale"))
        if autoscale is not None and "replicas" in fields.nodes:
            if not autoscale.min <= replicas <= autoscale.max:
                reader.error(
                    line_of(fields.nodes["replicas"]),
                    fields.at("replicas"),
                    f"expected a count between autoscale.min ({autoscale.min})"
                    f" and autoscale.max ({autoscale.max})",
                )
        elif autoscale is not None:
            replicas = autoscale.min

    service = Service(
        name=name,
        command=command or (),
        cwd=_optional_string(reader, fields, "cwd"),
        env=MappingProxyType(env),
        env_file=_optional_string(reader, fields, "env_file"),
        port=_port(reader, fields),
        replicas=replicas,
        probes=_probes(reader, fields),
        restart=_restart(reader, fields),
        stop=_stop(reader, fields),
        resources=_resources(reader, fields),
        autoscale=autoscale,
        depends_on=_depends_on(reader, fields),
        rollout=_rollout(reader, fields),
    )
    # Every field was read (and its mistakes recorded) before giving up.
    return service if command is not None else None


def read_command(reader: Reader, node: Node, path: str) -> tuple[str, ...] | None:
    """A command as a list of arguments, or one string split as a POSIX shell would."""
    value = reader.scalar(node)
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            reader.error(line_of(node), path, f"cannot split the command: {exc}")
            return None
    else:
        items = reader.items(node, path)
        if items is None:
            return None
        parts = [reader.env_value(item, item_path) for item_path, item in items]
        if any(part is None for part in parts):
            return None
        argv = tuple(part for part in parts if part is not None)
    if not argv:
        reader.error(line_of(node), path, "expected a non-empty command")
        return None
    return argv


def _optional_string(reader: Reader, fields: Fields, key: str) -> str | None:
    node = fields.get(key)
    return None if node is None else reader.string(node, fields.at(key))


def _optional_int(reader: Reader, fields: Fields, key: str, default: int, *, minimum: int) -> int:
    node = fields.get(key)
    if node is None:
        return default
    value = reader.integer(node, fields.at(key), minimum=minimum)
    return default if value is None else value


def _optional_number(
    reader: Reader, fields: Fields, key: str, default: float, *, positive: bool
) -> float:
    node = fields.get(key)
    if node is None:
        return default
    value = reader.number(node, fields.at(key), positive=positive)
    return default if value is None else value


def _port(reader: Reader, fields: Fields) -> int | None:
    node = fields.get("port")
    if node is None:
        return None
    value = reader.scalar(node)
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        reader.error(line_of(node), fields.at("port"), "expected a port (1-65535) or 'auto'")
        return None
    return value


def _probes(reader: Reader, fields: Fields) -> Probes:
    node = fields.get("probes")
    if node is None:
        return Probes()
    probe_fields = reader.fields(node, fields.at("probes"), ("startup", "readiness", "liveness"))
    if probe_fields is None:
        return Probes()
    found: dict[str, Probe | None] = {}
    for kind, probe_node in probe_fields.nodes.items():
        found[kind] = _probe(reader, probe_node, probe_fields.at(kind), kind)
    return Probes(
        startup=found.get("startup"),
        readiness=found.get("readiness"),
        liveness=found.get("liveness"),
    )


def _probe(reader: Reader, node: Node, path: str, role: str) -> Probe | None:
    fields = reader.fields(node, path, PROBE_KEYS)
    if fields is None:
        return None
    kinds: list[ProbeKind] = [k for k in ("http", "tcp", "exec") if k in fields.nodes]
    if len(kinds) != 1:
        reader.error(fields.line, path, "expected exactly one of: http, tcp, exec")
        return None
    kind = kinds[0]
    kind_node = fields.nodes[kind]
    probe_path, command = "/", tuple[str, ...]()
    if kind == "http":
        value = reader.scalar(kind_node)
        if not isinstance(value, str) or not value.startswith("/"):
            reader.error(line_of(kind_node), fields.at("http"), "expected a path starting with '/'")
            return None
        probe_path = value
    elif kind == "tcp":
        if reader.scalar(kind_node) is not True:
            reader.error(line_of(kind_node), fields.at("tcp"), "expected true")
            return None
    else:
        argv = read_command(reader, kind_node, fields.at("exec"))
        if argv is None:
            return None
        command = argv
    success = _optional_int(reader, fields, "success_threshold", 1, minimum=1)
    if role != "readiness" and success != 1:
        reader.error(
            line_of(fields.nodes["success_threshold"]),
            fields.at("success_threshold"),
            f"must be 1 for a {role} probe",
        )
    return Probe(
        kind=kind,
        path=probe_path,
        command=command,
        period=_optional_number(reader, fields, "period", 1.0, positive=True),
        timeout=_optional_number(reader, fields, "timeout", 1.0, positive=True),
        failure_threshold=_optional_int(reader, fields, "failure_threshold", 3, minimum=1),
        success_threshold=success,
        initial_delay=_optional_number(reader, fields, "initial_delay", 0.0, positive=False),
    )


def _restart(reader: Reader, fields: Fields) -> RestartPolicy:
    node = fields.get("restart")
    if node is None:
        return RestartPolicy()
    modes = ("always", "on-failure", "never")
    if isinstance(reader.scalar(node), str):
        mode = reader.choice(node, fields.at("restart"), modes)
        return RestartPolicy(mode=mode) if mode else RestartPolicy()  # type: ignore[arg-type]
    restart = reader.fields(node, fields.at("restart"), ("policy", "backoff"))
    if restart is None:
        return RestartPolicy()
    mode = "always"
    if (mode_node := restart.get("policy")) is not None:
        mode = reader.choice(mode_node, restart.at("policy"), modes) or "always"
    backoff = Backoff()
    if (backoff_node := restart.get("backoff")) is not None:
        backoff = _backoff(reader, backoff_node, restart.at("backoff"))
    return RestartPolicy(mode=mode, backoff=backoff)  # type: ignore[arg-type]


def _backoff(reader: Reader, node: Node, path: str) -> Backoff:
    fields = reader.fields(node, path, ("initial", "cap", "reset_after", "jitter"))
    if fields is None:
        return Backoff()
    default = Backoff()
    initial = _optional_number(reader, fields, "initial", default.initial, positive=True)
    cap = _optional_number(reader, fields, "cap", max(default.cap, initial), positive=True)
    if cap < initial and "cap" in fields.nodes:
        reader.error(
            line_of(fields.nodes["cap"]), fields.at("cap"), f"must be >= initial ({initial:g})"
        )
    jitter = _optional_number(reader, fields, "jitter", default.jitter, positive=False)
    if jitter > 1:
        reader.error(
            line_of(fields.nodes["jitter"]),
            fields.at("jitter"),
            "expected a fraction between 0 and 1",
        )
    return Backoff(
        initial=initial,
        cap=cap,
        reset_after=_optional_number(
            reader, fields, "reset_after", default.reset_after, positive=True
        ),
        jitter=jitter,
    )


def _stop(reader: Reader, fields: Fields) -> StopPolicy:
    node = fields.get("stop")
    if node is None:
        return StopPolicy()
    stop = reader.fields(node, fields.at("stop"), ("signal", "grace_period"))
    if stop is None:
        return StopPolicy()
    signal = "SIGTERM"
    if (signal_node := stop.get("signal")) is not None:
        value = reader.scalar(signal_node)
        name = value.upper() if isinstance(value, str) else ""
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name not in SIGNALS:
            reader.error(
                line_of(signal_node), stop.at("signal"), f"expected one of: {', '.join(SIGNALS)}"
            )
        else:
            signal = name
    return StopPolicy(
        signal=signal,
        grace_period=_optional_number(reader, stop, "grace_period", 10.0, positive=False),
    )


def _resources(reader: Reader, fields: Fields) -> Resources:
    node = fields.get("resources")
    if node is None:
        return Resources()
    resources = reader.fields(node, fields.at("resources"), ("memory", "cpu"))
    if resources is None:
        return Resources()
    memory = cpu = None
    if (memory_node := resources.get("memory")) is not None:
        value = reader.scalar(memory_node)
        match = _SIZE.match(value) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            memory = value
        elif match and float(match.group(1)) > 0:
            memory = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
        else:
            reader.error(
                line_of(memory_node),
                resources.at("memory"),
                "expected a size such as 512Mi, 1G or a number of bytes",
            )
    if (cpu_node := resources.get("cpu")) is not None:
        value = reader.scalar(cpu_node)
        millis = _MILLICORES.match(value) if isinstance(value, str) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            cpu = float(value)
        elif millis and int(millis.group(1)) > 0:
            cpu = int(millis.group(1)) / 1000
        else:
            reader.error(
                line_of(cpu_node),
                resources.at("cpu"),
                "expected cores (0.5) or millicores ('500m') > 0",
            )
    return Resources(memory_bytes=memory, cpu=cpu)


def _depends_on(reader: Reader, fields: Fields) -> tuple[str, ...]:
    node = fields.get("depends_on")
    if node is None:
        return ()
    names = []
    for path, item in reader.items(node, fields.at("depends_on")) or ():
        name = reader.string(item, path)
        if name is not None:
            names.append(name)
    return tuple(names)


def _amount(reader: Reader, fields: Fields, key: str, default: Amount) -> Amount:
    node = fields.get(key)
    if node is None:
        return default
    value = reader.scalar(node)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Amount(value)
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match and int(match.group(1)) <= 100:
        return Amount(int(match.group(1)), percent=True)
    reader.error(
        line_of(node), fields.at(key), "expected an integer >= 0 or a percentage like '25%'"
    )
    return default


def _rollout(reader: Reader, fields: Fields) -> Rollout:
    node = fields.get("rollout")
    if node is None:
        return Rollout()
    rollout = reader.fields(node, fields.at("rollout"), ("max_surge", "max_unavailable"))
    if rollout is None:
        return Rollout()
    default = Rollout()
    surge = _amount(reader, rollout, "max_surge", default.max_surge)
    unavailable = _amount(reader, rollout, "max_unavailable", default.max_unavailable)
    if surge.value == 0 and unavailable.value == 0:
        reader.error(rollout.line, rollout.path, "max_surge and max_unavailable cannot both be 0")
    return Rollout(max_surge=surge, max_unavailable=unavailable)


def check_dependencies(reader: Reader, services: Fields, loaded: dict[str, Service]) -> None:
    """Every ``depends_on`` names another service, and the graph has no cycle."""
    for name, service in loaded.items():
        for dependency in service.depends_on:
            if dependency == name:
                _depends_error(reader, services, name, "a service cannot depend on itself")
            elif dependency not in services.nodes:
                _depends_error(reader, services, name, f"unknown service '{dependency}'")
    # Depth-first search; a grey node met again closes a cycle.
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dependency in loaded[name].depends_on:
            if dependency not in loaded or dependency == name:
                continue
            if state.get(dependency) == 1:
                cycle = [*trail[trail.index(dependency) :], dependency]
                _depends_error(
                    reader, services, cycle[0], f"dependency cycle: {' -> '.join(cycle)}"
                )
            elif dependency not in state:
                visit(dependency, [*trail, dependency])
        state[name] = 2

    for name in loaded:
        if name not in state:
            visit(name, [name])


def _depends_error(reader: Reader, services: Fields, name: str, message: str) -> None:
    line = _key_line(services.nodes[name], "depends_on")
    reader.error(line, f"{services.at(name)}.depends_on", message)


def _key_line(node: Node, key: str) -> int:
    """The line of ``key`` in a mapping node (of the node itself if absent)."""
    if isinstance(node, MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return line_of(key_node)
    return line_of(node)


def check_ports(reader: Reader, services: Fields, loaded: dict[str, Service]) -> None:
    """Fixed port ranges (``port`` up to ``port + most replicas - 1``) do not overlap."""
    taken: list[tuple[int, int, str]] = []
    for name, service in loaded.items():
        if service.port is None:
            continue
        most = service.autoscale.max if service.autoscale else service.replicas
        low, high = service.port, service.port + max(most, 1) - 1
        where = services.at(name)
        line = _key_line(services.nodes[name], "port")
        if high > 65535:
            reader.error(line, f"{where}.port", f"{most} replicas from port {low} run past 65535")
        for other_low, other_high, other in taken:
            if low <= other_high and other_low <= high:
                reader.error(
                    line,
                    f"{where}.port",
                    f"ports {low}-{high} overlap service '{other}' ({other_low}-{other_high})",
                )
        taken.append((low, high, name))
