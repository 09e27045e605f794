"""The server's credentials file: created on first start, read on every start.

``DATA_DIR/credentials.json`` (mode 0600) lists principals; on first start it is
created with one admin holding a fresh access key pair and bearer token, and
``DATA_DIR/aws-credentials`` (mode 0600, the AWS CLI's INI format) holds the
same admin key so ``AWS_SHARED_CREDENTIALS_FILE`` can point the AWS CLI at it.
``DIRIGENT_ACCESS_KEY_ID``, ``DIRIGENT_SECRET_ACCESS_KEY`` and
``DIRIGENT_TOKEN`` define the admin instead; then no file is written.

This module must never log or print a secret; it only says where the files are.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
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
    # another user could open the file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


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


def load_principals(
    data_dir: Path, environ: Mapping[str, str]
) -> tuple[list[Principal], Path | None]:
    """The principals to serve, and the file just created (``None`` when none was)."""
    principals = read_principals(data_dir)
    key, secret, token = environ.get(ENV_KEY), environ.get(ENV_SECRET), environ.get(ENV_TOKEN)
    if key or secret or token:
        if not (key and secret):
            raise CredentialsError(f"set both {ENV_KEY} and {ENV_SECRET}, or neither")
        admin = Principal("env-admin", "admin", key, secret, token or secrets.token_urlsafe(32))
        return [admin, *(p for p in principals if p.access_key_id != key)], None
    if principals:
        return principals, None
    principals = [new_principal("admin", "admin")]
    return principals, write_principals(data_dir, principals)
