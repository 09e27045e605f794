"""The composition root: settings, then the store, the engine, credentials and the API server.

Everything with a lifetime is created here and nowhere else, so tests and
tools can build the same graph with other parts (another store, a fake
clock). :func:`serve` runs one ``dirigent server`` process: the engine's
worker in its threads and the HTTP server on the event loop, until SIGINT or
SIGTERM, after which both stop and the store is closed.

This module must never hold a module-level instance of anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from dirigent.api import ApiContext
from dirigent.api.auth import Principals
from dirigent.api.keyfile import load_principals
from dirigent.api.server import serve_http
from dirigent.engine import Engine, EngineSettings, FunctionRegistry
from dirigent.store import open_store

DEFAULT_DATA_DIR = Path(".dirigent")


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


def serve(
    settings: ServerSettings, environ: Mapping[str, str] | None = None, out: TextIO = sys.stdout
) -> None:
    environ = os.environ if environ is None else environ
    principals, created = load_principals(settings.data_dir, environ)
    store = open_store(store_url(settings))
    engine = Engine(
        store,
        settings=EngineSettings(region=settings.region, account=settings.account),
        functions=FunctionRegistry(dict(settings.functions)),
    )
    context = ApiContext(engine, Principals(principals))
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
        print(f"dirigent server listening on http://{settings.host}:{settings.port}", file=out)
        print(f"store: {store.url}", file=out, flush=True)
        serve_http(context, settings.host, settings.port, settings.log_level)
    finally:
        engine.stop()
        context.close()
        store.close()
