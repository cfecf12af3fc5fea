"""Pools on real loop files, block devices and Btrfs directories."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import btrfsutil
import pytest

from tests.conftest import Host, new_host, teardown_host

pytestmark = pytest.mark.integration


def _mounted(path: Path) -> bool:
    lines = Path("/proc/mounts").read_text().splitlines()
    return any(line.split()[1] == str(path) for line in lines)


def test_init_makes_a_sparse_loop_pool_and_is_harmless_twice() -> None:
    with new_host("1GiB") as host:
        img = host.state_dir / "disks" / "default.img"
        st = img.stat()
        assert st.st_size == 1024**3
        assert st.st_blocks * 512 < st.st_size // 4, "the loop file should be sparse"
        assert _mounted(host.pool)

        host.run("image", "build", "busybox", "--alias", "busybox")
        host.run("init")
        host.run("init", "--size", "1GiB")
        info = json.loads(host.run("pool", "info", "--format", "json").stdout)
        assert info["kind"] == "loop"
        assert info["source"] == str(img)
        assert info["mountpoint"] == str(host.pool)
        assert info["lxcpath"] == str(host.lxcpath)
        assert 900 * 1024**2 < info["size"] <= 1024**3
        assert 0 < info["free"] < info["size"]
        assert info["images"] == 1
        assert info["kernel"] == os.uname().release
        assert info["btrfs_progs"].startswith("v")
        assert info["lxc"]


def test_pool_info_table_names_every_field() -> None:
    with new_host("1GiB") as host:
        out = host.run("pool", "info").stdout
        for key in ("source:", "mountpoint:", "lxcpath:", "size:", "used:", "free:", "kernel:",
                    "btrfs_progs:"):
            assert key in out


def test_default_size_is_clamped_between_5_and_30_gib() -> None:
    with new_host(init=False) as host:
        host.run("init")
        size = (host.state_dir / "disks" / "default.img").stat().st_size
        st = os.statvfs(host.state_dir)
        expected = max(5 * 1024**3, min(30 * 1024**3, st.f_bavail * st.f_frsize // 5))
        assert abs(size - expected) < 1024**3


def test_commands_without_a_pool_say_so() -> None:
    with new_host(init=False) as host:
        line = host.fails(6, "list")
        assert "lxcow init" in line
        host.fails(6, "image", "list")


def test_bad_size_is_a_usage_error_and_changes_nothing() -> None:
    with new_host(init=False) as host:
        host.fails(2, "init", "--size", "lots")
        host.fails(2, "init", "--size", "10MiB")
        assert not (host.state_dir / "pool.json").exists()
        assert not (host.state_dir / "disks").exists()


def test_pool_is_mounted_again_after_a_reboot() -> None:
    with new_host("1GiB") as host:
        host.run("image", "build", "busybox", "--alias", "busybox")
        host.run("launch", "busybox", "c1")
        line = host.fails(6, "pool", "unmount")
        assert "c1" in line
        host.run("stop", "--force", "c1")
        host.run("pool", "unmount")
        assert not _mounted(host.pool)
        loops = subprocess.run(["losetup", "-j", str(host.state_dir / "disks" / "default.img")],
                               capture_output=True, text=True, check=True).stdout
        assert loops == "", "the loop device goes with the mount"
        out = host.run("list", "--format", "json").stdout
        assert [c["name"] for c in json.loads(out)] == ["c1"]
        assert _mounted(host.pool)
        host.run("start", "c1")
        host.run("delete", "--force", "c1")


def _scratch_loop(tmp: Path, size: str = "1G") -> str:
    img = tmp / "dev.img"
    subprocess.run(["truncate", "-s", size, str(img)], check=True)
    return subprocess.run(["losetup", "--find", "--show", str(img)], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_block_device_pool_refuses_a_device_with_a_filesystem_unless_forced(
        tmp_path: Path) -> None:
    dev = _scratch_loop(tmp_path)
    try:
        subprocess.run(["mkfs.ext4", "-q", dev], check=True)
        with new_host(init=False) as host:
            line = host.fails(6, "init", "--source", dev)
            assert "ext4" in line and "--force" in line
            assert not (host.state_dir / "pool.json").exists()

            host.run("init", "--source", dev, "--force")
            info = json.loads(host.run("pool", "info", "--format", "json").stdout)
            assert info["kind"] == "block" and info["source"] == dev
            host.run("image", "build", "busybox", "--alias", "busybox")
            host.run("launch", "busybox", "b1")
            assert json.loads(host.run("info", "b1", "--format", "json").stdout)["state"] == \
                "RUNNING"
            host.run("delete", "--force", "b1")

            # After a reboot the device is mounted again by the first command.
            subprocess.run(["umount", str(host.pool)], check=True)
            host.run("list")
            assert _mounted(host.pool)
            host.run("init", "--source", dev)
            host.fails(4, "init", "--source", str(tmp_path))
    finally:
        subprocess.run(["umount", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_directory_pool_on_btrfs_and_refusal_elsewhere(tmp_path: Path) -> None:
    dev = _scratch_loop(tmp_path)
    outer = Path(tempfile.mkdtemp(prefix="lxcow-test-outer-"))
    try:
        subprocess.run(["mkfs.btrfs", "-q", dev], check=True)
        subprocess.run(["mount", dev, str(outer)], check=True)
        btrfsutil.create_subvolume(outer / "lxcow")
        with new_host(init=False) as host:
            not_btrfs = tmp_path / "plain"
            not_btrfs.mkdir()
            line = host.fails(6, "init", "--source", str(not_btrfs))
            assert "not on a Btrfs" in line

            host.run("init", "--source", str(outer / "lxcow"))
            info = json.loads(host.run("pool", "info", "--format", "json").stdout)
            assert info["kind"] == "dir"
            assert info["lxcpath"] == str(outer / "lxcow" / "containers")
            host.run("image", "build", "busybox", "--alias", "busybox")
            host.run("launch", "busybox", "d1")
            subprocess.run(["lxc-info", "-P", info["lxcpath"], "-n", "d1"], check=True,
                           capture_output=True)
            host.run("delete", "--force", "d1")
    finally:
        teardown_host(outer)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_missing_source_is_not_found() -> None:
    with new_host(init=False) as host:
        host.fails(3, "init", "--source", "/dev/does-not-exist")


def test_state_dir_from_the_environment(shared_host: Host) -> None:
    env = dict(os.environ, LXCOW_STATE_DIR=str(shared_host.state_dir))
    proc = subprocess.run([*shared_host.argv("pool", "info", "--format", "json")[:3],
                           "pool", "info", "--format", "json"],
                          capture_output=True, text=True, env=env, check=True)
    assert json.loads(proc.stdout)["state_dir"] == str(shared_host.state_dir)
