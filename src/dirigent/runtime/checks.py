"""Run one probe against a replica: HTTP over a raw asyncio connection, TCP connect, or exec.

Each check answers ``True`` (healthy) or ``False`` within the probe's
timeout; it never raises for a failing replica. Counting results against
thresholds is :mod:`dirigent.runtime.probes`' job, not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib

from dirigent.manifest.model import Probe

HOST = "127.0.0.1"


async def check(probe: Probe, port: int | None, env: dict[str, str] | None = None) -> bool:
    try:
        return await asyncio.wait_for(_run(probe, port, env), probe.timeout)
    except (TimeoutError, OSError):
        return False


async def _run(probe: Probe, port: int | None, env: dict[str, str] | None) -> bool:
    if probe.kind == "exec":
        return await _exec(probe, env)
    if port is None:
        return False
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        if probe.kind == "tcp":
            return True
        request = f"GET {probe.path} HTTP/1.0\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split()
        # Kubernetes' rule: any status from 200 to 399 is a success.
        return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _exec(probe: Probe, env: dict[str, str] | None) -> bool:
    process = await asyncio.create_subprocess_exec(
        *probe.command,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
