"""cgroup v2 limits are written where the machine allows, and the reason is given where not.

A temporary directory stands in for the cgroup file system's root.
"""

from __future__ import annotations

import os
from pathlib import Path

from dirigent.manifest.model import Resources
from dirigent.runtime.cgroups import CgroupTree, cpu_max, own_cgroup, prepare

SELF = "0::/user.slice/session-1.scope\n"


def fake_v2(root: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    base = root / "user.slice" / "session-1.scope"
    base.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers)
    (base / "cgroup.controllers").write_text(controllers)
    (base / "cgroup.subtree_control").write_text("")
    return base


def make_subtree_files(group: Path) -> None:
    # The kernel creates these in every new group; the fake has to.
    group.mkdir(exist_ok=True)
    (group / "cgroup.subtree_control").write_text("")


def test_prepare_moves_itself_out_and_enables_memory_and_cpu_for_children(tmp_path: Path) -> None:
    base = fake_v2(tmp_path)
    make_subtree_files(base / "dirigent-shop")
    tree = prepare(tmp_path, SELF, "shop")
    assert tree == CgroupTree(base / "dirigent-shop")
    assert (base / "dirigent-control" / "cgroup.procs").read_text() == str(os.getpid())
    # Written one controller at a time; the fake file keeps the last write.
    assert (base / "cgroup.subtree_control").read_text() == "+memory"
    assert (base / "dirigent-shop" / "cgroup.subtree_control").read_text() == "+memory"


def test_a_replica_group_gets_memory_max_and_cpu_max(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    procs = tree.limit("web-0", Resources(memory_bytes=256 * 2**20, cpu=0.5))
    assert procs == tmp_path / "web-0" / "cgroup.procs"
    assert (tmp_path / "web-0" / "memory.max").read_text() == str(256 * 2**20)
    assert (tmp_path / "web-0" / "cpu.max").read_text() == "50000 100000"


def test_an_unset_limit_is_written_as_max_so_a_changed_spec_lifts_it(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    tree.limit("web-0", Resources(memory_bytes=1000, cpu=None))
    assert (tmp_path / "web-0" / "cpu.max").read_text() == "max 100000"
    tree.limit("web-0", Resources(memory_bytes=None, cpu=2))
    assert (tmp_path / "web-0" / "memory.max").read_text() == "max"
    assert (tmp_path / "web-0" / "cpu.max").read_text() == "200000 100000"


def test_release_removes_an_empty_group_and_tolerates_a_missing_one(tmp_path: Path) -> None:
    tree = CgroupTree(tmp_path)
    (tmp_path / "web-0").mkdir()
    tree.release("web-0")
    tree.release("web-0")
    assert not (tmp_path / "web-0").exists()


def test_release_all_removes_every_replica_group(tmp_path: Path) -> None:
    for name in ("web-0", "web-1"):
        (tmp_path / name).mkdir()
    CgroupTree(tmp_path).release_all()
    assert list(tmp_path.iterdir()) == []


def test_cpu_max_never_goes_below_the_kernels_one_millisecond_quota() -> None:
    assert cpu_max(0.001) == "1000 100000"
    assert cpu_max(1.5) == "150000 100000"


def test_cgroup_v1_is_named_as_the_reason(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "cpu").mkdir()
    assert (
        prepare(tmp_path, SELF, "shop")
        == f"no cgroup v2 at {tmp_path} (this machine has cgroup v1)"
    )


def test_a_missing_controller_is_named_as_the_reason(tmp_path: Path) -> None:
    base = fake_v2(tmp_path, controllers="cpu pids")
    reason = prepare(tmp_path, SELF, "shop")
    assert reason == f"the cgroup {base} does not delegate the memory controller"


def test_a_write_the_kernel_refuses_becomes_the_reason(tmp_path: Path) -> None:
    base = fake_v2(tmp_path)
    (base / "cgroup.subtree_control").unlink()  # as if the file were not ours to write
    (base / "cgroup.subtree_control").mkdir()
    reason = prepare(tmp_path, SELF, "shop")
    assert isinstance(reason, str)
    assert reason.startswith(f"cannot set up cgroups under {base}")


def test_own_cgroup_reads_the_unified_line_only() -> None:
    assert own_cgroup("12:memory:/x\n0::/a/b\n") == "/a/b"
    assert own_cgroup("12:memory:/x\n") is None
