"""What to exec for one replica: its argv, environment and port, from the spec.

Pure: the caller passes the inherited environment and the text of the
``env_file``; nothing here reads the process environment or a file, so the
same spec and inputs always give the same launch.

Precedence, lowest first: inherited environment, ``env_file``, ``env``, then
what Dirigent sets itself (``PORT``, ``DIRIGENT_SERVICE``, ``DIRIGENT_REPLICA``).
``$NAME`` and ``${NAME}`` in the command and in ``env`` values are expanded
against that environment; unknown names are left as written.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from dirigent.errors import ManifestError
from dirigent.manifest.model import Service


class EnvFileError(ManifestError):
    """An ``env_file`` line that is not ``NAME=value``; names the file and line."""


@dataclass(frozen=True, slots=True)
class Launch:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int | None


def parse_env_file(text: str, source: str) -> dict[str, str]:
    """``NAME=value`` lines; ``#`` comments, blank lines, ``export`` and quotes allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise EnvFileError(f"{source}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def expand(text: str, env: Mapping[str, str]) -> str:
    return string.Template(text).safe_substitute(env)


def slot_port(service: Service, slot: int, assigned: int | None) -> int | None:
    """A fixed base port gives slot ``i`` port ``base + i``; otherwise the assigned one."""
    return service.port + slot if service.port is not None else assigned


def build_launch(
    service: Service,
    *,
    slot: int,
    port: int | None,
    inherited: Mapping[str, str],
    env_file: Mapping[str, str],
) -> Launch:
    env = dict(inherited)
    env.update(env_file)
    own = {
        "DIRIGENT_SERVICE": service.name,
        "DIRIGENT_REPLICA": f"{service.name}-{slot}",
    }
    if port is not None:
        own["PORT"] = str(port)
    env.update(own)
    for name, value in service.env.items():
        env[name] = expand(value, env)
    env.update(own)  # Dirigent's own variables are not the service's to override
    argv = tuple(expand(arg, env) for arg in service.command)
    return Launch(argv=argv, env=env, port=port)
