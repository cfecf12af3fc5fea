"""The machine and the versions a run measured, read from the system, never typed."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import sys
from pathlib import Path

import lxc
from harness import BenchError, command

import lxcow

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "lxcow"


def _first(path: str, key: str, separator: str = ":") -> str:
    """The value of the first ``key<separator>value`` line of a file."""
    try:
        with open(path) as f:
            for line in f:
                name, sep, value = line.partition(separator)
                if sep and name.strip() == key:
                    return value.strip().strip('"')
    except OSError:
        pass
    return "unknown"


def _output(argv: list[str]) -> str:
    try:
        return command(argv).strip()
    except BenchError:
        return "unknown"


def lxcow_version() -> str:
    commit = _output(["git", "-C", os.fspath(REPO), "rev-parse", "--short", "HEAD"])
    changes = _output(["git", "-C", os.fspath(REPO), "status", "--porcelain", "--", "lxcow"])
    local = ", with uncommitted changes in lxcow/" if changes else ""
    return f"{lxcow.__version__} (git {commit}{local})"


def code_digest() -> str:
    """A digest of lxcow's sources, to notice when they change while the benchmark runs."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def facts() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": _first("/etc/os-release", "PRETTY_NAME", "="),
        "kernel": os.uname().release,
        "cpu": _first("/proc/cpuinfo", "model name"),
        "cpus": str(os.cpu_count()),
        "memory": _first("/proc/meminfo", "MemTotal"),
        "lxcow": lxcow_version(),
        "lxc": f"{_output(['lxc-start', '--version'])} (liblxc {lxc.version})",
        "btrfs-progs": _output(["btrfs", "--version"]).removeprefix("btrfs-progs "),
        "libbtrfsutil": _output(["dpkg-query", "-W", "-f=${Version}", "libbtrfsutil1"]),
        "python": f"{platform.python_version()} ({sys.executable})",
    }
