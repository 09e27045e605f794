"""The CLI's way to a running server: where it is, who we are, and JSON over HTTP.

The address comes from ``--server``, else ``DIRIGENT_SERVER``, else
``http://127.0.0.1:8080``; the bearer token from ``--token``, else
``DIRIGENT_TOKEN``, else the admin's token in the data directory
(``--data-dir``, ``DIRIGENT_DATA_DIR``, ``.dirigent``) that the server wrote
on its first start. Uses only the standard library's HTTP client.

This module must never print; commands decide what the user sees.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from dirigent.errors import DirigentError

DEFAULT_SERVER = "http://127.0.0.1:8080"


class RemoteError(DirigentError):
    """The server could not be reached or answered with an error."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--server", help=f"server URL (env DIRIGENT_SERVER; {DEFAULT_SERVER})")
    group.add_argument("--token", help="bearer token (env DIRIGENT_TOKEN; else the data dir's)")
    group.add_argument("--data-dir", help="the server's data directory (env DIRIGENT_DATA_DIR)")
    group.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _token_from(data_dir: Path) -> str | None:
    try:
        document = json.loads((data_dir / "credentials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for principal in document.get("principals", []) if isinstance(document, dict) else []:
        if isinstance(principal, dict) and principal.get("role") == "admin":
            token = principal.get("token")
            return token if isinstance(token, str) else None
    return None


class Client:
    def __init__(self, server: str, token: str | None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> Client:
        env = os.environ if environ is None else environ
        server = args.server or env.get("DIRIGENT_SERVER") or DEFAULT_SERVER
        data_dir = Path(args.data_dir or env.get("DIRIGENT_DATA_DIR") or ".dirigent")
        token = args.token or env.get("DIRIGENT_TOKEN") or _token_from(data_dir)
        return cls(server, token)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | None] | None = None,
    ) -> Any:
        url = self.server + "/api/v1" + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)
                message, code = str(error.get("message")), str(error.get("error"))
            except (ValueError, AttributeError):
                message, code = raw.decode("utf-8", "replace") or exc.reason, None
            raise RemoteError(f"{code or exc.code}: {message}", exc.code, code) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the server at {self.server}: {reason}") from exc
        return json.loads(raw) if raw else None


def arn_path(arn: str) -> str:
    return quote(arn, safe=":")


def table(rows: list[Mapping[str, Any]], columns: list[str]) -> str:
    """Rows as aligned columns under upper-case headings."""
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
