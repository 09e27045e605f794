"""Running ``dirigent`` against an app directory from a test: the CLI and a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dirigent(app: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``dirigent ARGS -f APP/dirigent.yaml`` as a subprocess, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "dirigent.cli.main", *args, "-f", str(app / "dirigent.yaml")],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
