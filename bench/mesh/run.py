"""The mesh benchmark: Dirigent's data plane against haproxy, as ratios from one run.

The same upstream (``upstream.py``) is reached directly, through haproxy
(Debian package, one thread, HTTP mode, keep-alive both sides) and through
Dirigent's outbound listener in three set-ups (``serve.py``: raw, full
policy path, full path with an mTLS hop to an inbound listener). Each proxy
runs alone on CPU 0 (``taskset``); wrk and the upstream share CPU 1, so a
proxy's throughput is what one core of it gives. Two loads:

- throughput: ``wrk -t1 -c32`` for ``--seconds``, requests per second;
- light load: ``wrk -t1 -c1 --latency``, p50, from which the direct p50 is
  subtracted to give the latency a proxy adds per hop;
- CPU per request: the proxy's user + system time from ``/proc/<pid>/stat``
  over the throughput run, divided by the requests wrk completed. Sharing the
  machine with other work moves requests per second far more than this.

It installs haproxy and wrk with apt-get when they are missing (root).
Figures move with whatever else the machine runs; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
PROXY_CPU, LOAD_CPU = "0", "1"
HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    http-reuse always
    server u1 127.0.0.1:{upstream}
"""


def ensure_tools() -> None:
    missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pinned(cpu: str, *command: str) -> list[str]:
    return ["taskset", "-c", cpu, *command]


def wrk(port: int, connections: int, seconds: int) -> tuple[float, float, int]:
    """(requests per second, p50 in microseconds, requests completed)."""
    out = subprocess.run(
        pinned(LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-H", "Host: payments", f"http://127.0.0.1:{port}/charge"),
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p50 = float(value) * {"us": 1.0, "ms": 1000.0, "s": 1e6}[unit]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate, p50, done


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def measure(port: int, seconds: int, pid: int | None) -> tuple[float, float, float]:
    """(requests per second, p50 µs, CPU µs per request; 0 without a pid)."""
    wrk(port, 32, 1)  # warm-up: pools filled, code paths hot
    before = cpu_seconds(pid) if pid is not None else 0.0
    rate, _, done = wrk(port, 32, seconds)
    cpu = (cpu_seconds(pid) - before) * 1e6 / done if pid is not None else 0.0
    _, p50, _ = wrk(port, 1, seconds)
    return rate, p50, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument(
        "--only", nargs="*", default=("raw", "full", "mtls"), choices=("raw", "full", "mtls"),
        help="the Dirigent set-ups to run (haproxy and direct always run)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ensure_tools()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent / "src")}
    upstream_port = free_port()
    procs = [subprocess.Popen(pinned(LOAD_CPU, PYTHON, str(HERE / "upstream.py"),
                                     str(upstream_port)), env=env)]  # fmt: skip
    results: dict[str, tuple[float, float, float, float]] = {}
    try:
        wait_for(upstream_port)
        rate, p50, _ = measure(upstream_port, args.seconds, None)
        results["direct"] = (rate, p50, 0.0, 0.0)
        config = HERE / ".haproxy.cfg"
        port = free_port()
        config.write_text(HAPROXY_CFG.format(port=port, upstream=upstream_port))
        contenders = {
            "haproxy": pinned(PROXY_CPU, "haproxy", "-f", str(config)),
            **{
                f"dirigent {mode}": pinned(PROXY_CPU, PYTHON, str(HERE / "serve.py"), mode,
                                           "{port}", str(upstream_port))
                for mode in args.only
            },
        }  # fmt: skip
        for name, command in contenders.items():
            port = free_port()
            proc = subprocess.Popen(
                [part.replace("{port}", str(port)) for part in command],
                env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            if name == "haproxy":
                config.write_text(HAPROXY_CFG.format(port=port, upstream=upstream_port))
                proc.kill()
                proc.wait()
                proc = subprocess.Popen(
                    pinned(PROXY_CPU, "haproxy", "-f", str(config)), stdout=subprocess.DEVNULL
                )
            try:
                wait_for(port)
                rate, p50, cpu = measure(port, args.seconds, proc.pid)
                results[name] = (rate, p50, rss_mb(proc.pid), cpu)
            finally:
                proc.terminate()
                proc.wait()
        config.unlink()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    report(results)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def report(results: dict[str, tuple[float, float, float, float]]) -> None:
    haproxy_rate, haproxy_cpu = results["haproxy"][0], results["haproxy"][3]
    direct_p50 = results["direct"][1]
    print(f"{'path':<16}{'req/s':>10}{'vs haproxy':>12}{'p50 µs (c=1)':>14}"
          f"{'added p50 µs':>14}{'RSS MB':>8}{'CPU µs/req':>12}{'per-CPU ratio':>15}")  # fmt: skip
    for name, (rate, p50, rss, cpu) in results.items():
        direct = name == "direct"
        ratio = "" if direct else f"{rate / haproxy_rate:.2f}"
        added = "" if direct else f"{p50 - direct_p50:.0f}"
        memory = "" if direct else f"{rss:.0f}"
        used = "" if direct else f"{cpu:.1f}"
        per_cpu = "" if direct or not cpu else f"{haproxy_cpu / cpu:.2f}"
        print(f"{name:<16}{rate:>10.0f}{ratio:>12}{p50:>14.0f}{added:>14}{memory:>8}"
              f"{used:>12}{per_cpu:>15}")  # fmt: skip


if __name__ == "__main__":
    main()
