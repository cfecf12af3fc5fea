"""Rendering and retargeting LXC config files, and the friendly config keys."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lxcow import lxcconfig
from lxcow.errors import UsageError
from lxcow.lxcconfig import Network, random_mac, render, retarget, value_of

MAC = re.compile(r"00:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}")
IMAGE_CONFIG = "lxc.arch = x86_64\nlxc.signal.halt = SIGUSR1\n"


def hwaddrs(text: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if re.match(r"lxc\.net\.\d+\.hwaddr\s*=", line)]


# -- Network ------------------------------------------------------------------------------


def test_network_parse_bridge_only() -> None:
    assert Network.parse("bridge=br0") == Network("br0", None)


def test_network_parse_bridge_and_ipv4() -> None:
    assert Network.parse("bridge=br0,ipv4=10.0.3.5/24") == Network("br0", "10.0.3.5/24")
    assert Network.parse("ipv4=10.0.3.5/24,bridge=lxcbr0") == Network("lxcbr0", "10.0.3.5/24")


@pytest.mark.parametrize("text", [
    "", "br0", "bridge", "bridge=", "=br0", "bridge=br0,", "bridge=br0,,", "ipv4=10.0.3.5/24",
    "bridge=br0,mtu=1500", "Bridge=br0", "bridge=br0,ipv4=10.0.3.5", "bridge=br0,ipv4=host",
    "bridge=br0,ipv4=10.0.3/24", "bridge=br0,ipv4=",
])
def test_network_parse_refuses(text: str) -> None:
    with pytest.raises(UsageError) as err:
        Network.parse(text)

    assert err.value.exit_code == 2


def test_network_parse_refuses_out_of_range_ipv4() -> None:
    with pytest.raises(UsageError):
        Network.parse("bridge=br0,ipv4=999.1.1.1/99")


def test_network_parse_refuses_a_newline_in_the_bridge_name() -> None:
    with pytest.raises(UsageError):
        Network.parse("bridge=br0\nlxc.hook.pre-start = /bin/evil")


# -- render -------------------------------------------------------------------------------


def test_render_without_network(tmp_path: Path) -> None:
    text = render("web1", tmp_path / "web1", IMAGE_CONFIG, None, apparmor=False)

    assert text.endswith("\n")
    assert value_of(text, "lxc.uts.name") == "web1"
    assert value_of(text, "lxc.rootfs.path") == f"btrfs:{tmp_path}/web1/rootfs"
    assert value_of(text, "lxc.log.file") == f"{tmp_path}/web1/lxc.log"
    assert value_of(text, "lxc.net.0.type") == "empty"
    assert value_of(text, "lxc.include") == lxcconfig.COMMON
    assert value_of(text, "lxc.arch") == "x86_64"
    assert value_of(text, "lxc.apparmor.profile") == "unconfined"
    assert value_of(text, "lxc.net.0.link") is None
    assert hwaddrs(text) == []


def test_render_keeps_the_image_config_before_our_keys(tmp_path: Path) -> None:
    text = render("web1", tmp_path, IMAGE_CONFIG, None, apparmor=False)

    assert text.index("lxc.signal.halt") < text.index("lxc.uts.name")
    assert "\n\n" not in text


def test_render_with_an_empty_image_config_has_no_blank_line(tmp_path: Path) -> None:
    assert "\n\n" not in render("web1", tmp_path, "", None, apparmor=False)


def test_render_with_network(tmp_path: Path) -> None:
    text = render("web1", tmp_path / "web1", "", Network("br0"), apparmor=False)

    assert value_of(text, "lxc.net.0.type") == "veth"
    assert value_of(text, "lxc.net.0.link") == "br0"
    assert value_of(text, "lxc.net.0.flags") == "up"
    assert MAC.fullmatch(value_of(text, "lxc.net.0.hwaddr") or "")
    assert value_of(text, "lxc.net.0.ipv4.address") is None


def test_render_with_static_ipv4(tmp_path: Path) -> None:
    text = render("web1", tmp_path, "", Network("br0", "10.0.3.5/24"), apparmor=False)

    assert value_of(text, "lxc.net.0.ipv4.address") == "10.0.3.5/24"


def test_apparmor_hosts_get_a_generated_profile(tmp_path: Path) -> None:
    text = render("web1", tmp_path, "", None, apparmor=True)

    assert value_of(text, "lxc.apparmor.profile") == "generated"


def test_each_render_gets_its_own_mac(tmp_path: Path) -> None:
    macs = {value_of(render("a", tmp_path, "", Network("br0"), apparmor=False),
                     "lxc.net.0.hwaddr") for _ in range(10)}

    assert len(macs) == 10


# -- retarget -----------------------------------------------------------------------------


def original(tmp_path: Path) -> str:
    return render("web1", tmp_path / "web1", IMAGE_CONFIG, Network("br0", "10.0.3.5/24"),
                  apparmor=False)


def test_retarget_moves_name_rootfs_and_log(tmp_path: Path) -> None:
    text = retarget(original(tmp_path), "web2", tmp_path / "web2")

    assert value_of(text, "lxc.uts.name") == "web2"
    assert value_of(text, "lxc.rootfs.path") == f"btrfs:{tmp_path}/web2/rootfs"
    assert value_of(text, "lxc.log.file") == f"{tmp_path}/web2/lxc.log"
    assert "web1" not in text


def test_retarget_keeps_the_other_lines(tmp_path: Path) -> None:
    old = original(tmp_path)
    new = retarget(old, "web2", tmp_path / "web2")

    assert len(new.splitlines()) == len(old.splitlines())
    for key in ("lxc.arch", "lxc.signal.halt", "lxc.include", "lxc.net.0.link",
                "lxc.net.0.ipv4.address", "lxc.apparmor.profile"):
        assert value_of(new, key) == value_of(old, key), key


def test_retarget_gives_new_macs(tmp_path: Path) -> None:
    old = original(tmp_path) + "lxc.net.1.type = veth\nlxc.net.1.hwaddr = 00:16:3e:00:00:01\n"
    new = retarget(old, "web2", tmp_path / "web2", new_macs=True)

    old_macs, new_macs = hwaddrs(old), hwaddrs(new)
    assert len(new_macs) == 2
    assert all(MAC.fullmatch(mac) for mac in new_macs)
    assert not set(old_macs) & set(new_macs)


def test_retarget_can_keep_macs(tmp_path: Path) -> None:
    old = original(tmp_path)
    new = retarget(old, "web2", tmp_path / "web2", new_macs=False)

    assert hwaddrs(new) == hwaddrs(old)
    assert value_of(new, "lxc.uts.name") == "web2"


def test_retarget_leaves_comments_alone(tmp_path: Path) -> None:
    text = retarget("# lxc.uts.name = old\nlxc.uts.name = old\n", "new", tmp_path)

    assert text == "# lxc.uts.name = old\nlxc.uts.name = new\n"


# -- value_of, random_mac -----------------------------------------------------------------


def test_value_of_returns_the_last_value() -> None:
    text = "lxc.uts.name = a\n  lxc.uts.name=b  \n# lxc.uts.name = c\nlxc.uts.namex = d\n"

    assert value_of(text, "lxc.uts.name") == "b"


def test_value_of_missing_key_is_none() -> None:
    assert value_of("lxc.arch = x86_64\n", "lxc.uts.name") is None
    assert value_of("", "lxc.arch") is None


def test_value_of_keeps_equals_signs_in_the_value() -> None:
    assert value_of("lxc.environment = A=B\n", "lxc.environment") == "A=B"


def test_random_mac_format_and_uniqueness() -> None:
    macs = [random_mac() for _ in range(20)]

    assert all(MAC.fullmatch(mac) for mac in macs)
    assert len(set(macs)) == len(macs)


# -- friendly keys ------------------------------------------------------------------------


def convert(key: str, value: str) -> str:
    spec = lxcconfig.friendly(key)
    assert spec is not None
    return spec.convert(value)


def test_friendly_keys_all_resolve() -> None:
    for key in lxcconfig.FRIENDLY_KEYS:
        spec = lxcconfig.friendly(key)
        assert spec is not None and spec.key == key


def test_unknown_friendly_key_is_none() -> None:
    assert lxcconfig.friendly("limits.disk") is None
    assert lxcconfig.friendly("lxc.uts.name") is None


def test_friendly_raw_keys_match_a_cgroup_layout() -> None:
    memory = lxcconfig.friendly("limits.memory")
    autostart = lxcconfig.friendly("boot.autostart")

    assert memory is not None and autostart is not None
    assert (memory.raw_key, memory.cgroup_item) in (
        ("lxc.cgroup.memory.limit_in_bytes", "memory.limit_in_bytes"),
        ("lxc.cgroup2.memory.max", "memory.max"),
    )
    assert (autostart.raw_key, autostart.cgroup_item) == ("lxc.start.auto", None)


@pytest.mark.parametrize(("value", "expected"), [
    ("256MiB", "268435456"), ("1G", "1073741824"), ("1GB", "1000000000"), ("4194304", "4194304"),
])
def test_limits_memory(value: str, expected: str) -> None:
    assert convert("limits.memory", value) == expected


@pytest.mark.parametrize("value", ["", "lots", "-1G", "1XB"])
def test_limits_memory_refuses(value: str) -> None:
    with pytest.raises(UsageError, match="memory limit"):
        convert("limits.memory", value)


def test_limits_cpu_count_one() -> None:
    assert convert("limits.cpu", "1") == "0"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs a host with 2 CPUs")
def test_limits_cpu_count_becomes_a_range() -> None:
    assert convert("limits.cpu", "2") == "0-1"


@pytest.mark.parametrize("value", ["0,2-3", "1-3", "0,1,2", "0-0"])
def test_limits_cpu_list_is_kept(value: str) -> None:
    assert convert("limits.cpu", value) == value


@pytest.mark.parametrize("value", ["0", str((os.cpu_count() or 1) + 1), "", "a", "1-", ",1",
                                   "-1", "0 - 1", "0,,1", "0;1"])
def test_limits_cpu_refuses(value: str) -> None:
    with pytest.raises(UsageError) as err:
        convert("limits.cpu", value)

    assert err.value.exit_code == 2


def test_limits_cpu_refuses_superscript_digits() -> None:
    with pytest.raises(UsageError):
        convert("limits.cpu", "²")


def test_limits_processes() -> None:
    assert convert("limits.processes", "1") == "1"
    assert convert("limits.processes", "500") == "500"


@pytest.mark.parametrize("value", ["0", "-1", "", "1.5", "many", "00"])
def test_limits_processes_refuses(value: str) -> None:
    with pytest.raises(UsageError, match="limits.processes"):
        convert("limits.processes", value)


@pytest.mark.parametrize(("value", "expected"), [
    ("true", "1"), ("yes", "1"), ("1", "1"), ("on", "1"), ("TRUE", "1"), ("Yes", "1"),
    ("false", "0"), ("no", "0"), ("0", "0"), ("off", "0"), ("False", "0"),
])
def test_boot_autostart(value: str, expected: str) -> None:
    assert convert("boot.autostart", value) == expected


@pytest.mark.parametrize("value", ["", "maybe", "2", "y", "n", " true"])
def test_boot_autostart_refuses(value: str) -> None:
    with pytest.raises(UsageError, match="invalid boolean"):
        convert("boot.autostart", value)
