"""Memory and CPU limits of replicas through cgroup v2, or a clear warning where that cannot be.

The layout, under the cgroup the control plane was started in (``base``,
read from ``/proc/self/cgroup``)::

    base/                       controllers +memory +cpu enabled for children
      dirigent-control/         the control plane moves itself here
      dirigent-<app>/           +memory +cpu enabled for children
        <service>-<slot>/       memory.max, cpu.max; the replica joins before exec

The control plane leaves ``base`` because cgroup v2 lets a group hand
controllers to its children only while it holds no process itself.

Everything takes the cgroup file system's root as an argument, so tests run
it against a temporary directory. This module must never raise for a machine
that cannot limit (cgroup v1, no delegation, no permission): it answers with
the reason, and the caller warns once per service.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from dirigent.manifest.model import Resources

#: cpu.max's period, in microseconds (the kernel's default)
CPU_PERIOD_US = 100_000
_CONTROLLERS = ("cpu", "memory")


@dataclass(frozen=True, slots=True)
class CgroupTree:
    """The group replicas of one app are created under."""

    app_group: Path

    def limit(self, replica: str, resources: Resources) -> Path:
        """Create (or reuse) ``replica``'s group with its limits; returns its ``cgroup.procs``."""
        group = self.app_group / replica
        group.mkdir(exist_ok=True)
        memory = "max" if resources.memory_bytes is None else str(resources.memory_bytes)
        (group / "memory.max").write_text(memory, encoding="ascii")
        (group / "cpu.max").write_text(cpu_max(resources.cpu), encoding="ascii")
        return group / "cgroup.procs"

    def release(self, replica: str) -> None:
        """Remove an empty replica group; one still busy stays (the kernel refuses)."""
        with contextlib.suppress(OSError):
            (self.app_group / replica).rmdir()

    def release_all(self) -> None:
        """Remove every replica group once the replicas are gone (at ``down``)."""
        with contextlib.suppress(OSError):
            for group in self.app_group.iterdir():
                if group.is_dir():
                    self.release(group.name)


def cpu_max(cores: float | None) -> str:
    """``cpu.max`` for a limit in cores: quota and period in microseconds, or no limit."""
    if cores is None:
        return f"max {CPU_PERIOD_US}"
    # The kernel refuses a quota under 1 ms.
    return f"{max(1000, round(cores * CPU_PERIOD_US))} {CPU_PERIOD_US}"


def describe(resources: Resources) -> str:
    parts = []
    if resources.memory_bytes is not None:
        parts.append(f"memory {resources.memory_bytes} bytes")
    if resources.cpu is not None:
        parts.append(f"cpu {resources.cpu:g} cores")
    return ", ".join(parts)


def own_cgroup(self_cgroup: str) -> str | None:
    """The cgroup v2 path in the text of ``/proc/self/cgroup`` (its ``0::`` line)."""
    for line in self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def prepare(root: Path, self_cgroup: str, app: str) -> CgroupTree | str:
    """Set the layout up under ``root``; the tree, or why limits cannot be applied here."""
    if not (root / "cgroup.controllers").is_file():
        kind = "cgroup v1" if (root / "memory").is_dir() or (root / "cpu").is_dir() else "none"
        return f"no cgroup v2 at {root} (this machine has {kind})"
    own = own_cgroup(self_cgroup)
    if own is None:
        return "this process is not in a cgroup v2 group"
    base = root / own.lstrip("/")
    try:
        available = (base / "cgroup.controllers").read_text(encoding="ascii").split()
        missing = [c for c in _CONTROLLERS if c not in available]
        if missing:
            return f"the cgroup {base} does not delegate the {' and '.join(missing)} controller"
        control = base / "dirigent-control"
        control.mkdir(exist_ok=True)
        (control / "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")
        _enable(base)
        app_group = base / f"dirigent-{app}"
        app_group.mkdir(exist_ok=True)
        _enable(app_group)
    except OSError as exc:
        return f"cannot set up cgroups under {base}: {exc.strerror or exc}"
    return CgroupTree(app_group)


def _enable(group: Path) -> None:
    enabled = (group / "cgroup.subtree_control").read_text(encoding="ascii").split()
    wanted = [c for c in _CONTROLLERS if c not in enabled]
    if wanted:
        # One write per controller: the kernel applies a multi-token write partially on error.
        for controller in wanted:
            (group / "cgroup.subtree_control").write_text(f"+{controller}", encoding="ascii")
