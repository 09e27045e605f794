"""The server's credentials file: created on first start, read on every start.

``DATA_DIR/credentials.json`` (mode 0600) lists principals; on first start it is
created with one admin holding a fresh access key pair and bearer token, and
``DATA_DIR/aws-credentials`` (mode 0600, the AWS CLI's INI format) holds the
same admin key so ``AWS_SHARED_CREDENTIALS_FILE`` can point the AWS CLI at it.
``DIRIGENT_ACCESS_KEY_ID``, ``DIRIGENT_SECRET_ACCESS_KEY`` and
``DIRIGENT_TOKEN`` define the admin instead; then no file is written.

``dirigent keys add`` appends a viewer or operator to the file while the
server runs; the server's :class:`KeyFileRefresh` looks at the file again when
a key or token it does not know arrives, and reads it only if it changed, at
most four times a second: a new key works at once, and a flood of forged keys
costs a ``stat`` each. Files are replaced whole (written aside, then renamed),
so a reader never sees half of one.

This module must never log or print a secret; it only says where the files are.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dirigent.api.auth import ROLES, Principal
from dirigent.errors import DirigentError

CREDENTIALS_FILE = "credentials.json"
AWS_CREDENTIALS_FILE = "aws-credentials"
ENV_KEY = "DIRIGENT_ACCESS_KEY_ID"
ENV_SECRET = "DIRIGENT_SECRET_ACCESS_KEY"
ENV_TOKEN = "DIRIGENT_TOKEN"
#: the name of the admin defined by the variables above
ENV_ADMIN = "env-admin"


class CredentialsError(DirigentError):
    """The credentials file or variables cannot be used; the message says why."""


def new_principal(name: str, role: str) -> Principal:
    if role not in ROLES:
        raise CredentialsError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    # AKID-like: 20 upper-case characters, as AWS tools expect of an access key id.
    key_id = "DIR" + secrets.token_hex(9).upper()[:17]
    return Principal(name, role, key_id, secrets.token_urlsafe(30), secrets.token_urlsafe(32))


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: a chmod after writing leaves a window where
    # another user could open the file. Written aside and renamed over the old
    # one, so a running server re-reading it never sees it half written.
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(aside, 0o600)
        os.replace(aside, path)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise


def _principal(item: Any, path: Path) -> Principal:
    fields = ("name", "role", "access_key_id", "secret_access_key", "token")
    if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in fields):
        raise CredentialsError(f"{path}: every principal needs string fields {', '.join(fields)}")
    if item["role"] not in ROLES:
        raise CredentialsError(f"{path}: unknown role {item['role']!r}")
    return Principal(*(item[f] for f in fields))


def read_principals(data_dir: Path) -> list[Principal]:
    path = data_dir / CREDENTIALS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{path}: cannot read: {exc}") from exc
    items = document.get("principals") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise CredentialsError(f'{path}: expected {{"principals": [...]}}')
    return [_principal(item, path) for item in items]


def write_principals(data_dir: Path, principals: list[Principal]) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CREDENTIALS_FILE
    document = {"principals": [asdict(p) for p in principals]}
    _write_private(path, json.dumps(document, indent=2) + "\n")
    admin = next((p for p in principals if p.role == "admin"), None)
    if admin is not None:
        _write_private(
            data_dir / AWS_CREDENTIALS_FILE,
            "[default]\n"
            f"aws_access_key_id = {admin.access_key_id}\n"
            f"aws_secret_access_key = {admin.secret_access_key}\n",
        )
    return path


def _environment_admin(environ: Mapping[str, str]) -> Principal | None:
    key, secret, token = environ.get(ENV_KEY), environ.get(ENV_SECRET), environ.get(ENV_TOKEN)
    if not (key or secret or token):
        return None
    if not (key and secret):
        raise CredentialsError(f"set both {ENV_KEY} and {ENV_SECRET}, or neither")
    return Principal(ENV_ADMIN, "admin", key, secret, token or secrets.token_urlsafe(32))


def _with_admin(admin: Principal, principals: list[Principal]) -> list[Principal]:
    return [admin, *(p for p in principals if p.access_key_id != admin.access_key_id)]


def load_principals(
    data_dir: Path, environ: Mapping[str, str], *, create: bool = True
) -> tuple[list[Principal], Path | None]:
    """The principals to serve, and the file just created (``None`` when none was).

    With ``create`` false (a process serving beside the one that created them),
    finding none is a :class:`CredentialsError` rather than a new admin.
    """
    principals = read_principals(data_dir)
    admin = _environment_admin(environ)
    if admin is not None:
        return _with_admin(admin, principals), None
    if principals:
        return principals, None
    if not create:
        raise CredentialsError(f"{data_dir / CREDENTIALS_FILE} holds no principals")
    principals = [new_principal("admin", "admin")]
    return principals, write_principals(data_dir, principals)


def add_principal(data_dir: Path, name: str, role: str) -> Principal:
    """A new principal appended to the credentials file, which must exist already.

    A missing file is refused rather than created: the server makes its admin
    only when it finds no principals, so a file holding just a viewer would
    leave the server without one.
    """
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        raise CredentialsError(
            f"{path} does not exist: start `dirigent server --data-dir {data_dir}` once "
            "first, which creates the admin"
        )
    if name == ENV_ADMIN:
        raise CredentialsError(
            f"{ENV_ADMIN!r} names the admin that {ENV_KEY} and {ENV_SECRET} define; "
            "choose another name"
        )
    principals = read_principals(data_dir)
    if any(p.name == name for p in principals):
        raise CredentialsError(f"{path}: a principal named {name!r} exists already")
    principal = new_principal(name, role)
    write_principals(data_dir, [*principals, principal])
    return principal


class KeyFileRefresh:
    """The credentials file again, when it changed, read at most once per ``interval``.

    Given to :class:`dirigent.api.auth.Principals` as its ``refresh`` hook; it
    runs on the event loop, so it does a ``stat`` and, rarely, reads a small
    file. A file that cannot be read (being replaced, broken by hand) keeps the
    principals already known and is tried again after the interval.
    """

    def __init__(
        self,
        data_dir: Path,
        loaded: list[Principal],
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = data_dir / CREDENTIALS_FILE
        self._data_dir = data_dir
        # The admin from the environment is not in the file; keep the very one
        # loaded at start (its token may have been made up then).
        self._admin = next((p for p in loaded if p.name == ENV_ADMIN), None)
        self._interval = interval
        self._clock = clock
        self._checked_at: float | None = None
        # Unknown: the first miss reads the file, in case it changed since it
        # was loaded.
        self._seen: tuple[int, int, int] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def __call__(self) -> list[Principal] | None:
        signature = self._signature()
        if signature is None or signature == self._seen:
            return None
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._interval:
            return None  # changed again so soon: read it on a miss after the interval
        self._checked_at = now
        try:
            principals = read_principals(self._data_dir)
        except CredentialsError:
            return None
        self._seen = signature
        return principals if self._admin is None else _with_admin(self._admin, principals)
