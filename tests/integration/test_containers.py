"""Containers on a real loop pool: real LXC containers that start, stop and run commands."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import btrfsutil
import pytest

from tests.conftest import Host, assert_whole, kill_when, wait_for

pytestmark = pytest.mark.integration


def _info(host: Host, name: str) -> dict:
    return json.loads(host.run("info", name, "--format", "json").stdout)


def _state(host: Host, name: str) -> str:
    return str(_info(host, name)["state"])


def _image_fp(host: Host) -> str:
    return str(json.loads(host.run("image", "info", "busybox", "--format", "json").stdout)
               ["fingerprint"])


@pytest.fixture
def bridge() -> Iterator[str]:
    br = "lxcowbr" + uuid.uuid4().hex[:6]
    subprocess.run(["ip", "link", "add", br, "type", "bridge"], check=True)
    try:
        yield br
    finally:
        subprocess.run(["ip", "link", "del", br], capture_output=True)


# -- create, launch, list ---------------------------------------------------------------------


def test_create_is_a_writable_snapshot_of_the_image(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    assert_whole(host, name)
    image_root = host.pool / "images" / _image_fp(host) / "rootfs"
    child = btrfsutil.subvolume_info(host.lxcpath / name / "rootfs")
    assert child.parent_uuid == btrfsutil.subvolume_info(image_root).uuid
    info = _info(host, name)
    assert info["state"] == "STOPPED"
    assert info["image"] == "busybox"
    assert info["image_fingerprint"] == _image_fp(host)
    host.run("delete", name)


def test_many_containers_take_almost_no_space(host: Host) -> None:
    btrfsutil.sync(host.pool)
    before = os.statvfs(host.pool)
    names = [f"s{i}" for i in range(20)]
    host.run("create", "busybox", *names)
    btrfsutil.sync(host.pool)
    after = os.statvfs(host.pool)
    used = (before.f_bfree - after.f_bfree) * after.f_frsize
    assert used < 20 * 256 * 1024, f"20 containers used {used} bytes"


def test_launch_makes_a_running_fleet_that_lxc_tools_see(shared_host: Host) -> None:
    host = shared_host
    names = [f"fleet-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    host.run("launch", "busybox", *names)
    listed = host.lxc("lxc-ls", "-1").stdout.split()
    for n in names:
        assert n in listed
        assert _state(host, n) == "RUNNING"
        assert "RUNNING" in host.lxc("lxc-info", "-n", n, "-s").stdout
        out = host.lxc("lxc-attach", "-n", n, "--", "/bin/hostname").stdout.strip()
        assert out == n
    host.run("delete", "--force", *names)
    listed = host.lxc("lxc-ls", "-1").stdout.split()
    assert not set(names) & set(listed)


def test_list_formats_share_the_same_data(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rows = json.loads(host.run("list", "--format", "json").stdout)
    mine = [r for r in rows if r["name"] == name]
    assert len(mine) == 1
    for key in ("name", "state", "image", "created", "ipv4"):
        assert key in mine[0]
    table = host.run("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE", "IMAGE", "CREATED", "IPV4"]
    assert any(line.split()[:3] == [name, "STOPPED", "busybox"] for line in table[1:])
    csv = host.run("list", "--format", "csv").stdout.splitlines()
    assert csv[0] == "name,state,image,created,ipv4"
    assert any(line.startswith(f"{name},STOPPED,busybox,") for line in csv)
    yaml_out = host.run("list", "--format", "yaml").stdout
    assert f"name: {name}" in yaml_out
    assert len(table) - 1 == len(rows) == len(csv) - 1
    host.run("delete", name)


def test_network_bridge_gets_a_veth_and_the_address_is_listed(
        shared_host: Host, name: str, bridge: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name, "--network", f"bridge={bridge},ipv4=192.0.2.10/24")
    info = _info(host, name)
    assert info["ipv4"] == ["192.0.2.10"]
    links = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                           text=True, check=True).stdout
    assert "veth" in links or "@" in links
    row = [r for r in json.loads(host.run("list", "--format", "json").stdout)
           if r["name"] == name][0]
    assert row["ipv4"] == ["192.0.2.10"]
    host.run("delete", "--force", name)


def test_no_network_by_default(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    out = host.run("exec", name, "--", "cat", "/proc/net/dev").stdout
    assert [line.split(":")[0].strip() for line in out.splitlines()[2:]] == ["lo"]
    host.run("delete", "--force", name)


def test_missing_bridge_is_not_found(shared_host: Host, name: str) -> None:
    shared_host.fails(3, "create", "busybox", name, "--network", "bridge=nosuchbr0")
    shared_host.fails(2, "create", "busybox", name, "--network", "vlan=3")
    assert name not in shared_host.names()


# -- lifecycle ----------------------------------------------------------------------------------


def test_start_stop_restart_freeze_unfreeze(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.fails(6, "stop", name)
    host.run("start", name)
    assert _state(host, name) == "RUNNING"
    pid = _info(host, name)["pid"]
    assert pid and Path(f"/proc/{pid}").exists()
    host.fails(6, "start", name)

    host.run("freeze", name)
    assert _state(host, name) == "FROZEN"
    host.fails(6, "freeze", name)
    host.run("unfreeze", name)
    assert _state(host, name) == "RUNNING"
    host.fails(6, "unfreeze", name)

    host.run("restart", "--force", name)
    assert _state(host, name) == "RUNNING"
    assert _info(host, name)["pid"] != pid

    host.run("stop", "--force", name)
    assert _state(host, name) == "STOPPED"
    host.run("delete", name)


def test_clean_stop_uses_the_image_halt_signal(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    started = time.monotonic()
    host.run("stop", "--timeout", "20", name)
    elapsed = time.monotonic() - started
    assert _state(host, name) == "STOPPED"
    # busybox init halts cleanly on SIGUSR1 (about 2 s); a timeout would have taken 20 s.
    assert elapsed < 15
    host.run("delete", name)


def test_state_changes_made_by_lxc_tools_show_up(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.lxc("lxc-start", "-n", name)
    wait_for(lambda: _state(host, name) == "RUNNING")
    host.lxc("lxc-freeze", "-n", name)
    assert _state(host, name) == "FROZEN"
    host.lxc("lxc-unfreeze", "-n", name)
    host.lxc("lxc-stop", "-k", "-n", name)
    assert _state(host, name) == "STOPPED"
    host.run("delete", name)


def test_exec_passes_the_exit_status_and_output(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    proc = host.run("exec", name, "--", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert proc.returncode == 7
    assert proc.stdout == "out\n"
    assert "err" in proc.stderr
    assert host.run("exec", name, "--env", "GREETING=hi", "--", "sh", "-c",
                    "echo $GREETING").stdout == "hi\n"
    assert host.run("exec", name, "--", "hostname").stdout.strip() == name
    proc = host.run("exec", name, "--", "sh", "-c", "kill -9 $$", check=False)
    assert proc.returncode == 137
    host.run("stop", "--force", name)
    host.fails(6, "exec", name, "--", "true")
    host.run("delete", name)


def test_delete_refuses_a_running_container_unless_forced(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    line = host.fails(6, "delete", name)
    assert name in line and "running" in line
    assert _state(host, name) == "RUNNING"
    host.run("delete", "--force", name)
    assert name not in host.names()
    assert not (host.lxcpath / name).exists()
    host.fails(3, "info", name)


def test_delete_removes_nested_subvolumes(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    btrfsutil.create_subvolume(rootfs / "var" / "lib-machines")
    btrfsutil.create_subvolume(rootfs / "var" / "lib-machines" / "inner")
    btrfsutil.set_subvolume_read_only(rootfs / "var" / "lib-machines", True)
    host.run("delete", name)
    assert not (host.lxcpath / name).exists()
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert not [p for p, _ in it if name in p]


# -- copy and rename ----------------------------------------------------------------------------


def test_copy_gets_its_own_hostname_and_mac(shared_host: Host, name: str, bridge: str) -> None:
    host = shared_host
    clone = name + "-c"
    host.run("create", "busybox", name, "--network", f"bridge={bridge}")
    host.run("copy", name, clone)
    assert_whole(host, clone)
    src_cfg = (host.lxcpath / name / "config").read_text()
    dst_cfg = (host.lxcpath / clone / "config").read_text()

    def mac(text: str) -> str:
        return [line.split("=")[1].strip() for line in text.splitlines()
                if line.startswith("lxc.net.0.hwaddr")][0]

    assert mac(src_cfg) != mac(dst_cfg)
    assert f"lxc.uts.name = {clone}" in dst_cfg
    assert str(host.lxcpath / clone / "rootfs") in dst_cfg
    assert f"{host.lxcpath / name}/" not in dst_cfg
    src = btrfsutil.subvolume_info(host.lxcpath / name / "rootfs")
    assert btrfsutil.subvolume_info(host.lxcpath / clone / "rootfs").parent_uuid == src.uuid
    host.run("start", clone)
    assert host.run("exec", clone, "--", "hostname").stdout.strip() == clone
    host.run("delete", "--force", name, clone)


def test_copy_of_a_running_container_holds_its_data(shared_host: Host, name: str) -> None:
    host = shared_host
    clone = name + "-c"
    host.run("launch", "busybox", name)
    host.run("exec", name, "--", "sh", "-c", "echo payload > /root/data")
    host.run("copy", name, clone)
    assert (host.lxcpath / clone / "rootfs" / "root" / "data").read_text() == "payload\n"
    assert _state(host, name) == "RUNNING"
    host.run("delete", "--force", name, clone)


def test_copy_keeps_nested_subvolumes(shared_host: Host, name: str) -> None:
    host = shared_host
    clone = name + "-c"
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    btrfsutil.create_subvolume(rootfs / "srv")
    (rootfs / "srv" / "file").write_text("nested\n")
    btrfsutil.set_subvolume_read_only(rootfs / "srv", True)
    host.run("copy", name, clone)
    copied = host.lxcpath / clone / "rootfs" / "srv"
    assert btrfsutil.is_subvolume(copied)
    assert btrfsutil.get_subvolume_read_only(copied)
    assert (copied / "file").read_text() == "nested\n"
    host.run("delete", name, clone)


def test_rename_moves_config_and_rootfs(shared_host: Host, name: str) -> None:
    host = shared_host
    new = name + "-r"
    host.run("create", "busybox", name)
    host.run("rename", name, new)
    assert name not in host.names()
    assert_whole(host, new)
    cfg = (host.lxcpath / new / "config").read_text()
    assert f"lxc.uts.name = {new}" in cfg and f"/{name}/" not in cfg
    host.run("start", new)
    assert host.run("exec", new, "--", "hostname").stdout.strip() == new
    host.fails(6, "rename", new, name)
    host.run("delete", "--force", new)


def test_copy_and_rename_refuse_bad_targets(shared_host: Host, name: str) -> None:
    host = shared_host
    other = name + "-o"
    host.run("create", "busybox", name, other)
    host.fails(4, "copy", name, other)
    host.fails(4, "rename", name, other)
    host.fails(3, "copy", name + "-missing", name + "-x")
    host.fails(2, "copy", name, "--", "-bad")
    host.fails(2, "rename", name, "bad_name")
    assert name in host.names() and other in host.names()
    assert name + "-x" not in host.names()
    host.run("delete", name, other)


# -- config -------------------------------------------------------------------------------------


def test_friendly_limits_apply_to_config_and_running_cgroup(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    host.run("config", "set", name, "limits.memory", "256MiB")
    assert host.run("config", "get", name, "limits.memory").stdout.strip() == "268435456"
    cfg = (host.lxcpath / name / "config").read_text()
    assert "268435456" in cfg
    cgroup = Path(f"/sys/fs/cgroup/memory/lxc.payload.{name}/memory.limit_in_bytes")
    if cgroup.exists():
        assert cgroup.read_text().strip() == "268435456"
    host.run("config", "set", name, "limits.processes", "50")
    host.run("config", "set", name, "limits.cpu", "1")
    assert host.run("config", "get", name, "limits.cpu").stdout.strip() == "0"
    host.run("restart", "--force", name)
    assert _state(host, name) == "RUNNING"
    host.run("config", "unset", name, "limits.memory")
    assert host.run("config", "get", name, "limits.memory").stdout == ""
    host.run("delete", "--force", name)


def test_raw_keys_and_autostart(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.run("config", "set", name, "lxc.environment", "FOO=bar")
    assert host.run("config", "get", name, "lxc.environment").stdout.strip() == "FOO=bar"
    host.run("config", "set", name, "boot.autostart", "true")
    assert _info(host, name)["autostart"] is True
    assert "lxc.start.auto = 1" in (host.lxcpath / name / "config").read_text()
    assert name in host.lxc("lxc-autostart", "-L").stdout
    host.run("config", "set", name, "boot.autostart", "false")
    assert _info(host, name)["autostart"] is False
    before = (host.lxcpath / name / "config").read_text()
    host.fails(2, "config", "set", name, "limits.memory", "lots")
    host.fails(2, "config", "set", name, "no.such.key", "1")
    host.fails(2, "config", "set", name, "lxc.nonsense", "1")
    host.fails(2, "config", "set", name, "lxc.rootfs.path", "/tmp")
    assert (host.lxcpath / name / "config").read_text() == before
    host.run("delete", name)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["-lead", "has_underscore", "dot.ted", "a" * 64, "sl/ash", "..",
                                 "ünï"])
def test_invalid_names_are_refused_before_any_change(shared_host: Host, bad: str) -> None:
    before = shared_host.names()
    shared_host.fails(2, "create", "busybox", "--", bad)
    assert shared_host.names() == before
    assert shared_host.leftovers() == []


def test_missing_objects_and_existing_names(shared_host: Host, name: str) -> None:
    host = shared_host
    for cmd in (["start"], ["stop"], ["delete"], ["info"], ["freeze"], ["restart"]):
        assert name in host.fails(3, *cmd, name)
    host.fails(3, "exec", name, "--", "true")
    host.fails(3, "config", "get", name, "limits.memory")
    host.fails(3, "create", "no-such-image", name)
    host.run("create", "busybox", name)
    assert name in host.fails(4, "create", "busybox", name)
    host.run("delete", name)


def test_a_fleet_with_one_bad_name_creates_nothing(shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    before = host.names()
    host.fails(4, "create", "busybox", name + "-a", name, name + "-b")
    host.fails(2, "create", "busybox", name + "-a", name + "-a")
    host.fails(2, "create", "busybox", name + "-a", "bad_one")
    assert host.names() == before
    host.run("delete", name)


# -- locks, kills and signals -------------------------------------------------------------------


def test_a_locked_container_makes_the_second_command_fail_cleanly(
        shared_host: Host, name: str) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    lock = host.pool / ".lxcow" / "locks" / f"container.{name}"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        line = host.fails(5, "--lock-timeout", "0.3", "start", name)
        assert name in line and "locked" in line
        assert _state(host, name) == "STOPPED"
        waiter = host.spawn("--lock-timeout", "30", "start", name)
        time.sleep(0.5)
        assert waiter.poll() is None, "the second command should wait for the lock"
    finally:
        os.close(fd)
    assert waiter.wait(timeout=30) == 0
    assert _state(host, name) == "RUNNING"
    host.run("delete", "--force", name)


def test_concurrent_creates_of_one_name_never_interleave(shared_host: Host, name: str) -> None:
    host = shared_host
    procs = [host.spawn("create", "busybox", name) for _ in range(4)]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes == [0, 4, 4, 4]
    assert_whole(host, name)
    assert host.leftovers() == []
    host.run("delete", name)


def _whole_or_absent(host: Host, names: list[str]) -> list[str]:
    present = [n for n in names if (host.lxcpath / n).exists()]
    for n in present:
        assert_whole(host, n)
    return present


def test_kill_during_create_leaves_no_half_made_container(host: Host) -> None:
    names = [f"k{i}" for i in range(60)]
    for _ in range(3):
        proc = host.spawn("create", "busybox", *names)
        kill_when(proc, lambda: host.leftovers())
        assert host.leftovers(), "the kill should land while a temporary object exists"
        present = _whole_or_absent(host, names)
        assert len(present) < len(names)
        host.run("list")
        assert host.leftovers() == []
        if present:
            host.run("start", present[0])
            host.run("delete", "--force", *present)


def test_kill_during_copy_leaves_no_half_made_container(host: Host) -> None:
    host.run("create", "busybox", "src")
    rootfs = host.lxcpath / "src" / "rootfs"
    for i in range(30):
        btrfsutil.create_subvolume(rootfs / f"nested{i}")
    for _ in range(3):
        proc = host.spawn("copy", "src", "dst")
        kill_when(proc, lambda: host.leftovers())
        assert not (host.lxcpath / "dst").exists() or _whole_or_absent(host, ["dst"])
        host.run("list")
        assert host.leftovers() == []
        if (host.lxcpath / "dst").exists():
            host.run("delete", "dst")
    assert host.names() == ["src"]


def test_kill_during_delete_finishes_on_the_next_command(host: Host) -> None:
    host.run("create", "busybox", "victim")
    rootfs = host.lxcpath / "victim" / "rootfs"
    for i in range(200):
        btrfsutil.create_subvolume(rootfs / f"nested{i}")
    proc = host.spawn("delete", "victim")
    # Killed once the container has been moved out of sight and is being removed.
    kill_when(proc, lambda: host.leftovers() and not (host.lxcpath / "victim").exists())
    assert "victim" not in host.names()
    host.run("list")
    assert host.leftovers() == []
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert not [p for p, _ in it if "nested" in p]


def test_sigterm_during_a_fleet_rolls_back_and_cleans_up(host: Host) -> None:
    names = [f"t{i}" for i in range(200)]
    proc = host.spawn("create", "busybox", *names)
    wait_for(lambda: len(host.names()) >= 3, timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert host.names() == []
    assert host.leftovers() == []


def test_autostart_starts_only_marked_containers_in_order(host: Host) -> None:
    host.run("create", "busybox", "first", "second", "manual")
    host.run("config", "set", "first", "boot.autostart", "true")
    host.run("config", "set", "first", "lxc.start.order", "10")
    host.run("config", "set", "second", "boot.autostart", "true")
    assert host.run("autostart").stdout.split() == ["first", "second"]
    states = {c["name"]: c["state"]
              for c in json.loads(host.run("list", "--format", "json").stdout)}
    assert states == {"first": "RUNNING", "second": "RUNNING", "manual": "STOPPED"}
    assert host.run("autostart").stdout == "", "running ones are left alone"
    host.run("delete", "--force", "first", "second", "manual")
