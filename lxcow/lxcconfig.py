"""LXC config files: rendering a new container's config and the friendly config keys."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

from lxcow.errors import NotFound, UsageError
from lxcow.units import parse_size

COMMON = "/usr/share/lxc/config/common.conf"
LOG_FILE = "lxc.log"


@dataclasses.dataclass(frozen=True)
class Network:
    """A veth attached to an existing host bridge, optionally with a static IPv4 address."""

    bridge: str
    ipv4: str | None = None

    @classmethod
    def parse(cls, text: str) -> Network:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or key not in ("bridge", "ipv4") or not value:
                raise UsageError(f"invalid --network {text!r}",
                                 hint="use bridge=NAME[,ipv4=ADDRESS/PREFIX]")
            fields[key] = value
        if "bridge" not in fields:
            raise UsageError(f"invalid --network {text!r}", hint="bridge=NAME is required")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", fields["bridge"], re.ASCII):
            raise UsageError(f"invalid bridge name {fields['bridge']!r}")
        ipv4 = fields.get("ipv4")
        if ipv4 is not None:
            import ipaddress

            try:
                ipaddress.IPv4Interface(ipv4)
            except ValueError:
                raise UsageError(f"invalid IPv4 address {ipv4!r}",
                                 hint="use ADDRESS/PREFIX, e.g. 10.0.3.5/24") from None
            if "/" not in ipv4:
                raise UsageError(f"invalid IPv4 address {ipv4!r}", hint="add the /PREFIX")
        return cls(fields["bridge"], ipv4)

    def check(self) -> None:
        if not os.path.isdir(f"/sys/class/net/{self.bridge}/bridge"):
            raise NotFound(f"host bridge {self.bridge} not found",
                           hint="create it first, e.g. 'ip link add NAME type bridge'")


def random_mac() -> str:
    """A random MAC in the range LXC uses (00:16:3e, the Xen OUI), as lxc-copy does."""
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3))


def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def render(name: str, container_dir: Path, image_config: str, network: Network | None,
           *, apparmor: bool) -> str:
    lines = [
        "# LXC container managed by lxcow",
        f"lxc.include = {COMMON}",
        image_config.rstrip("\n"),
        f"lxc.uts.name = {name}",
        f"lxc.rootfs.path = btrfs:{container_dir / 'rootfs'}",
        f"lxc.log.file = {container_dir / LOG_FILE}",
        "lxc.log.level = WARN",
        "lxc.apparmor.profile = " + ("generated" if apparmor else "unconfined"),
    ]
    if network is None:
        lines.append("lxc.net.0.type = empty")
    else:
        lines += [
            "lxc.net.0.type = veth",
            f"lxc.net.0.link = {network.bridge}",
            "lxc.net.0.flags = up",
            f"lxc.net.0.hwaddr = {random_mac()}",
        ]
        if network.ipv4:
            lines.append(f"lxc.net.0.ipv4.address = {network.ipv4}")
    return "\n".join(line for line in lines if line) + "\n"


def retarget(text: str, name: str, container_dir: Path, *, new_macs: bool = True) -> str:
    """A container's config moved to ``name`` in ``container_dir`` (a copy gets new MACs)."""
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "lxc.uts.name":
            line = f"lxc.uts.name = {name}"
        elif key == "lxc.rootfs.path":
            line = f"lxc.rootfs.path = btrfs:{container_dir / 'rootfs'}"
        elif key == "lxc.log.file":
            line = f"lxc.log.file = {container_dir / LOG_FILE}"
        elif new_macs and re.fullmatch(r"lxc\.net\.\d+\.hwaddr", key):
            line = f"{key} = {random_mac()}"
        out.append(line)
    return "\n".join(out) + "\n"


def value_of(text: str, key: str) -> str | None:
    """The last value of ``key`` in a config file's text (no includes followed)."""
    value = None
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            value = v.strip()
    return value


# -- friendly keys ------------------------------------------------------------------------


def _cgroup_v1(controller: str) -> bool:
    return os.path.ismount(f"/sys/fs/cgroup/{controller}")


def _memory(value: str) -> str:
    size = parse_size(value, "memory limit")
    if size < 1024**2:
        raise UsageError(f"limits.memory {value} is too small", hint="give at least 1MiB")
    return str(size)


def _cpus(value: str) -> str:
    if re.fullmatch(r"[0-9]+", value):
        count = int(value)
        if not 1 <= count <= (os.cpu_count() or 1):
            raise UsageError(f"limits.cpu {value} is not between 1 and {os.cpu_count()}")
        return f"0-{count - 1}" if count > 1 else "0"
    if not re.fullmatch(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", value):
        raise UsageError(f"invalid limits.cpu {value!r}", hint="give a count or a list like 0,2-3")
    for part in value.split(","):
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            raise UsageError(f"invalid limits.cpu range {part!r}", hint="write ranges low-high")
    return value


def _processes(value: str) -> str:
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        raise UsageError(f"invalid limits.processes {value!r}", hint="give a positive number")
    return value


def _boolean(value: str) -> str:
    truth = {"true": "1", "yes": "1", "1": "1", "on": "1",
             "false": "0", "no": "0", "0": "0", "off": "0"}
    if value.lower() not in truth:
        raise UsageError(f"invalid boolean {value!r}", hint="use true or false")
    return truth[value.lower()]


@dataclasses.dataclass(frozen=True)
class Friendly:
    key: str
    raw_key: str
    cgroup_item: str | None
    convert: Callable[[str], str]


def friendly(key: str) -> Friendly | None:
    """The LXC key behind a friendly key, for this host's cgroup layout."""
    def cgroup(controller: str, v1: str, v2: str) -> tuple[str, str]:
        if _cgroup_v1(controller):
            return f"lxc.cgroup.{v1}", v1
        return f"lxc.cgroup2.{v2}", v2

    if key == "limits.memory":
        raw, item = cgroup("memory", "memory.limit_in_bytes", "memory.max")
        return Friendly(key, raw, item, _memory)
    if key == "limits.cpu":
        raw, item = cgroup("cpuset", "cpuset.cpus", "cpuset.cpus")
        return Friendly(key, raw, item, _cpus)
    if key == "limits.processes":
        raw, item = cgroup("pids", "pids.max", "pids.max")
        return Friendly(key, raw, item, _processes)
    if key == "boot.autostart":
        return Friendly(key, "lxc.start.auto", None, _boolean)
    return None


FRIENDLY_KEYS = ("limits.memory", "limits.cpu", "limits.processes", "boot.autostart")

