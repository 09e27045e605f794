"""An engine node as its own process, for tests that kill it.

Usage: python -m tests.integration.engine.node STORE_URL [POOL_SIZE]
Runs the worker until killed; the functions it serves are in ``functions.py``.
"""

from __future__ import annotations

import signal
import sys
import threading

from dirigent.engine import Engine, EngineSettings, FunctionRegistry
from dirigent.store import open_store
from tests.integration.engine import functions


def main() -> None:
    store = open_store(sys.argv[1])
    pool = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    engine = Engine(
        store,
        settings=EngineSettings(pool_size=pool, lease_seconds=3.0, idle_poll=0.05),
        functions=FunctionRegistry(functions.REGISTRY),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine.start()
    print("ready", flush=True)
    stop.wait()
    engine.stop()


if __name__ == "__main__":
    main()
