"""Snapshots on a real loop pool: read-only, consistent, LXC-compatible, safe to restore."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import time
from pathlib import Path

import btrfsutil
import pytest

from tests.conftest import Host, assert_whole, kill_when

pytestmark = pytest.mark.integration


def _snaps(host: Host, name: str) -> list[dict]:
    return list(json.loads(host.run("snapshot", "list", name, "--format", "json").stdout))


def _tree(root: Path) -> dict[str, str]:
    """Path -> content digest (or link target) of every file below ``root``."""
    result = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = Path(dirpath) / f
            rel = str(p.relative_to(root))
            if p.is_symlink():
                result[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                result[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return result


def _state(host: Host, name: str) -> str:
    return str(json.loads(host.run("info", name, "--format", "json").stdout)["state"])


def test_snapshots_are_read_only_named_and_listed(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    assert host.run("snapshot", "create", name, "--comment", "before upgrade").stdout == "snap0\n"
    assert host.run("snapshot", "create", name).stdout == "snap1\n"
    assert host.run("snapshot", "create", name, "mine").stdout == "mine\n"
    snaps = _snaps(host, name)
    assert [s["name"] for s in snaps] == ["snap0", "snap1", "mine"]
    assert snaps[0]["comment"] == "before upgrade"
    for s in snaps:
        assert s["created"].endswith("+00:00")
        rootfs = Path(s["path"]) / "rootfs"
        assert btrfsutil.get_subvolume_read_only(rootfs)
        assert f"lxc.rootfs.path = btrfs:{rootfs}" in (Path(s["path"]) / "config").read_text()
    table = host.run("snapshot", "list", name).stdout.splitlines()
    assert table[0].split() == ["NAME", "CREATED", "COMMENT", "SIZE"]
    assert "before upgrade" in table[1]
    shown = json.loads(host.run("snapshot", "show", name, "snap0", "--format", "json").stdout)
    assert shown == snaps[0]
    host.run("snapshot", "delete", name, "snap0")
    assert host.run("snapshot", "create", name).stdout == "snap0\n"
    host.run("delete", name)
    assert not (host.lxcpath / name).exists()


def test_snapshot_bad_input(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.run("snapshot", "create", name, "s")
    assert name in host.fails(4, "snapshot", "create", name, "s")
    host.fails(2, "snapshot", "create", name, "bad_name")
    host.fails(2, "snapshot", "create", name, "--", "-x")
    host.fails(3, "snapshot", "create", name + "-missing")
    host.fails(3, "snapshot", "restore", name, "nope")
    host.fails(3, "snapshot", "delete", name, "nope")
    host.fails(3, "snapshot", "show", name, "nope")
    host.fails(3, "copy", f"{name}/nope", name + "-c")
    assert [s["name"] for s in _snaps(host, name)] == ["s"]
    assert host.leftovers() == []
    host.run("delete", name)


def test_restore_brings_back_the_snapshot_byte_for_byte(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    host.run("exec", name, "--", "sh", "-c",
             "head -c 100000 /dev/urandom > /root/blob; echo one > /root/note")
    host.run("snapshot", "create", name, "s1")
    rootfs = host.lxcpath / name / "rootfs"
    at_snapshot = _tree(rootfs / "root")
    host.run("exec", name, "--", "sh", "-c",
             "echo two > /root/note; echo later > /root/later; rm /root/blob")
    host.run("snapshot", "create", name, "s2")
    host.run("config", "set", name, "limits.processes", "77")

    host.run("snapshot", "restore", "--force", name, "s1")
    assert _state(host, name) == "RUNNING", "a running container is started again"
    assert _tree(host.lxcpath / name / "rootfs" / "root") == at_snapshot
    assert not (host.lxcpath / name / "rootfs" / "root" / "later").exists()
    assert host.run("exec", name, "--", "cat", "/root/note").stdout == "one\n"
    config = (host.lxcpath / name / "config").read_text()
    assert "pids.max" not in config, "the config is restored too"
    assert [s["name"] for s in _snaps(host, name)] == ["s1", "s2"], "newer snapshots stay"

    host.run("snapshot", "restore", "--force", name, "s2")
    assert host.run("exec", name, "--", "cat", "/root/note").stdout == "two\n"
    assert host.leftovers() == []
    host.run("delete", "--force", name)


def test_snapshot_of_a_running_container_is_consistent_and_logged(
        shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    proc = host.run("-v", "snapshot", "create", name)
    assert "frozen for" in proc.stderr
    assert _state(host, name) == "RUNNING", "the container is thawed again"
    stopped = host.run("-v", "stop", "--force", name)
    assert stopped.returncode == 0
    proc = host.run("-v", "snapshot", "create", name)
    assert "frozen for" not in proc.stderr, "a stopped container is not frozen"
    host.run("delete", name)


def test_nested_subvolumes_in_snapshot_copy_restore_and_delete(
        shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    btrfsutil.create_subvolume(rootfs / "var" / "machines")
    (rootfs / "var" / "machines" / "a").write_text("a1\n")
    btrfsutil.create_subvolume(rootfs / "var" / "machines" / "ro")
    (rootfs / "var" / "machines" / "ro" / "b").write_text("b1\n")
    btrfsutil.set_subvolume_read_only(rootfs / "var" / "machines" / "ro", True)

    host.run("snapshot", "create", name, "s")
    snap = host.lxcpath / name / "snaps" / "s" / "rootfs"
    for sub in ("", "var/machines", "var/machines/ro"):
        assert btrfsutil.is_subvolume(snap / sub)
        assert btrfsutil.get_subvolume_read_only(snap / sub), f"{sub} must be read-only"
    assert (snap / "var" / "machines" / "ro" / "b").read_text() == "b1\n"
    assert sorted(_snaps(host, name)[0]["nested"]) == ["var/machines", "var/machines/ro"]

    (rootfs / "var" / "machines" / "a").write_text("a2\n")
    host.run("snapshot", "restore", name, "s")
    rootfs = host.lxcpath / name / "rootfs"
    assert (rootfs / "var" / "machines" / "a").read_text() == "a1\n"
    assert not btrfsutil.get_subvolume_read_only(rootfs / "var" / "machines")
    assert btrfsutil.get_subvolume_read_only(rootfs / "var" / "machines" / "ro")

    clone = name + "-c"
    host.run("copy", f"{name}/s", clone)
    crootfs = host.lxcpath / clone / "rootfs"
    assert btrfsutil.is_subvolume(crootfs / "var" / "machines" / "ro")
    assert not btrfsutil.get_subvolume_read_only(crootfs / "var" / "machines")
    assert btrfsutil.get_subvolume_read_only(crootfs / "var" / "machines" / "ro")
    host.run("start", clone)
    assert host.run("exec", clone, "--", "hostname").stdout.strip() == clone

    host.run("delete", "--force", name, clone)
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert not [p for p, _ in it if name in p]


def test_lxc_snapshot_sees_ours_and_we_see_theirs(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.run("snapshot", "create", name, "ours", "--comment", "made by lxcow")
    listed = host.lxc("lxc-snapshot", "-n", name, "-L").stdout
    assert "ours" in listed

    rootfs = host.lxcpath / name / "rootfs"
    (rootfs / "root" / "marker").write_text("theirs\n")
    host.lxc("lxc-snapshot", "-n", name)
    names = [s["name"] for s in _snaps(host, name)]
    assert "snap0" in names and "ours" in names
    (rootfs / "root" / "marker").write_text("changed\n")

    host.run("snapshot", "restore", name, "snap0")
    assert (host.lxcpath / name / "rootfs" / "root" / "marker").read_text() == "theirs\n"
    host.run("snapshot", "delete", name, "snap0")
    assert not (host.lxcpath / name / "snaps" / "snap0").exists()

    # LXC restores and deletes ours, and the live container survives.
    host.lxc("lxc-snapshot", "-n", name, "-r", "ours", "-N", name + "-r")
    assert (host.lxcpath / (name + "-r") / "rootfs" / "bin" / "busybox").is_file()
    host.lxc("lxc-snapshot", "-n", name, "-d", "ours")
    assert _snaps(host, name) == []
    assert_whole(host, name)
    host.run("delete", name)
    host.lxc("lxc-destroy", "-n", name + "-r")


def test_restore_waits_for_or_refuses_a_locked_container(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.run("snapshot", "create", name, "s")
    (host.lxcpath / name / "rootfs" / "root" / "after").write_text("x")
    lock = host.pool / ".lxcow" / "locks" / f"container.{name}"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        host.fails(5, "--lock-timeout", "0.2", "snapshot", "restore", name, "s")
        host.fails(5, "--lock-timeout", "0.2", "snapshot", "create", name)
    finally:
        os.close(fd)
    assert (host.lxcpath / name / "rootfs" / "root" / "after").exists()
    assert [s["name"] for s in _snaps(host, name)] == ["s"]
    host.run("delete", name)


def _with_nested(host: Host, name: str, count: int) -> None:
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    for i in range(count):
        btrfsutil.create_subvolume(rootfs / f"n{i}")
        (rootfs / f"n{i}" / "f").write_text(str(i))


def test_kill_during_snapshot_create(host: Host) -> None:
    _with_nested(host, "k", 150)
    for _ in range(3):
        proc = host.spawn("snapshot", "create", "k", "s")
        kill_when(proc, lambda: host.leftovers())
        host.run("list")
        assert host.leftovers() == []
        snaps = _snaps(host, "k")
        if snaps:
            snap = host.lxcpath / "k" / "snaps" / "s" / "rootfs"
            assert all(btrfsutil.is_subvolume(snap / f"n{i}") for i in range(150))
            host.run("snapshot", "delete", "k", "s")
        assert_whole(host, "k")
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert len([p for p, _ in it if p.startswith("containers/k/rootfs/n")]) == 150
        assert not [p for p, _ in it if ".lxcow" in p]


def test_kill_during_restore_leaves_old_or_restored_container(host: Host) -> None:
    _with_nested(host, "r", 120)
    rootfs = host.lxcpath / "r" / "rootfs"
    (rootfs / "root" / "state").write_text("old\n")
    host.run("snapshot", "create", "r", "s")
    rng = random.Random(7)
    outcomes = set()
    for _ in range(6):
        (host.lxcpath / "r" / "rootfs" / "root" / "state").write_text("new\n")
        host.run("config", "set", "r", "limits.processes", "99")
        proc = host.spawn("snapshot", "restore", "r", "s")
        delay = rng.uniform(0, 0.02)
        kill_when(proc, lambda d=delay: bool(host.leftovers()) and time.sleep(d) is None)
        host.run("list")
        assert host.leftovers() == []
        assert_whole(host, "r")
        content = (host.lxcpath / "r" / "rootfs" / "root" / "state").read_text()
        config = (host.lxcpath / "r" / "config").read_text()
        assert content in ("old\n", "new\n")
        # Never a restored rootfs with the old config, nor the reverse.
        assert ("pids.max = 99" in config) == (content == "new\n")
        outcomes.add(content)
        assert [s["name"] for s in _snaps(host, "r")] == ["s"]
    host.run("start", "r")
    host.run("delete", "--force", "r")
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert not [p for p, _ in it if "containers/r" in p or ".lxcow" in p]


def test_kill_during_delete_of_a_container_with_snapshots(host: Host) -> None:
    _with_nested(host, "d", 60)
    host.run("snapshot", "create", "d")
    host.run("snapshot", "create", "d")
    proc = host.spawn("delete", "d")
    # Killed once the container has been moved out of sight and is being removed.
    kill_when(proc, lambda: host.leftovers() and not (host.lxcpath / "d").exists())
    assert "d" not in host.names()
    host.run("list")
    assert host.leftovers() == []
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert [p for p, _ in it if not p.startswith("images/")] == []


def test_a_killed_second_restore_from_the_same_snapshot_keeps_the_config(host: Host) -> None:
    """A restore killed before its swap must not finish: even when the live rootfs already
    descends from the same snapshot (restored from it before), the config stays as it is."""
    from lxcow import Lxcow, btrfs

    host.run("create", "busybox", "twice")
    host.run("snapshot", "create", "twice", "s")
    host.run("snapshot", "restore", "twice", "s")
    host.run("config", "set", "twice", "limits.processes", "42")
    d = host.lxcpath / "twice"
    config = (d / "config").read_text()

    # What a restore leaves when killed after cloning the snapshot, before the swap.
    pool = Lxcow(host.state_dir).pool
    scratch = host.tmp / "restore-twice-s.killed"
    scratch.mkdir()
    btrfs.snapshot(d / "snaps" / "s" / "rootfs", scratch / "rootfs", readonly=False)
    pool.record_intent(scratch, [(d / "config", "restored config\n")],
                       done_if_subvolume=(d / "rootfs", btrfs.info(scratch / "rootfs").uuid))
    host.run("list")
    assert host.leftovers() == []
    assert (d / "config").read_text() == config

    # The same, killed just after the swap: the next command writes the config.
    scratch.mkdir()
    btrfs.snapshot(d / "snaps" / "s" / "rootfs", scratch / "rootfs", readonly=False)
    pool.record_intent(scratch, [(d / "config", config.replace("42", "43"))],
                       done_if_subvolume=(d / "rootfs", btrfs.info(scratch / "rootfs").uuid))
    from lxcow.fsutil import exchange

    exchange(scratch / "rootfs", d / "rootfs")
    host.run("list")
    assert host.leftovers() == []
    assert "pids.max = 43" in (d / "config").read_text()
    assert_whole(host, "twice")
