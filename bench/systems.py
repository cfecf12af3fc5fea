"""How each system under test is driven: lxcow's CLI and API, LXC's tools, liblxc, libbtrfsutil.

Everything runs in this process tree.  The lxcow CLI is the installed entry point of the venv
this benchmark runs in; the API is imported in-process; LXC's tools work on an lxcpath on the
same Btrfs filesystem; the raw floor is one libbtrfsutil call made from here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import _lxc
import btrfsutil
from harness import BenchError, Role, Step, quiet
from hostpool import BenchPool

from lxcow import Lxcow

IMAGE = "busybox"
GOLDEN = "golden"
LXCOW_BIN = Path(sys.executable).parent / "lxcow"
SYSTEM_PYTHON = "/usr/bin/python3"
IMPORT_BINDINGS = "import lxc, btrfsutil"
# The busybox template's defaults do not start on a host without AppArmor and lxcbr0.
LXC_EXTRA_CONFIG = "lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n"
START_TIMEOUT = 10


@dataclasses.dataclass
class Ctx:
    """One benchmark pool with lxcow set up on it and a golden LXC container beside it."""

    pool: BenchPool
    lx: Lxcow
    lxcpath: Path
    image_rootfs: Path

    def cli(self, *args: str) -> list[str]:
        return [os.fspath(LXCOW_BIN), "--state-dir", os.fspath(self.pool.state_dir), *args]

    def lxc(self, tool: str, *args: str, lxcpath: Path | None = None) -> list[str]:
        return [tool, "-P", os.fspath(lxcpath or self.lxcpath), *args]

    def lxc_copy(self, source: str, new: str) -> None:
        """LXC's copy-on-write clone, ``lxc-copy -s -B btrfs``."""
        quiet(self.lxc("lxc-copy", "-n", source, "-N", new, "-s", "-B", "btrfs"))

    def rootfs(self, name: str) -> Path:
        return self.pool.lxcow_lxcpath / name / "rootfs"

    def raw_path(self, name: str) -> Path:
        return self.pool.raw / name


def setup_lxcow(pool: BenchPool) -> Lxcow:
    """An lxcow pool in a directory of the benchmark's filesystem, with the busybox image."""
    pool.lxcow_source.mkdir(exist_ok=True)
    lx = Lxcow(pool.state_dir)
    lx.init(source=os.fspath(pool.lxcow_source))
    lx.image_build_busybox(alias=IMAGE)
    return lx


def make_ctx(pool: BenchPool, *, golden: bool = True) -> Ctx:
    lx = setup_lxcow(pool)
    lxcpath = pool.lxcpath()
    ctx = Ctx(pool, lx, lxcpath, Path(lx.image(IMAGE).path))
    if golden:
        lxc_template(ctx, GOLDEN)
    return ctx


def lxc_template(ctx: Ctx, name: str, *, backing: str = "btrfs",
                 lxcpath: Path | None = None) -> None:
    """``lxc-create -t busybox``, with the two settings this host needs appended."""
    conf = ctx.pool.root / "lxc-extra.conf"
    conf.write_text(LXC_EXTRA_CONFIG)
    quiet(ctx.lxc("lxc-create", "-n", name, "-t", "busybox", "-B", backing, "-f",
                  os.fspath(conf), lxcpath=lxcpath))


# -- in-process floors ----------------------------------------------------------------------


def raw_snapshot(source: Path, dest: Path, *, readonly: bool = False) -> None:
    btrfsutil.create_snapshot(os.fspath(source), os.fspath(dest), read_only=readonly)


def raw_delete(path: Path) -> None:
    btrfsutil.delete_subvolume(os.fspath(path))


def _container(name: str, lxcpath: Path) -> Any:
    """liblxc's container object, from the C extension python3-lxc's ``lxc`` module wraps."""
    return _lxc.Container(name, os.fspath(lxcpath))


def liblxc_start(name: str, lxcpath: Path) -> None:
    c = _container(name, lxcpath)
    if not c.start(daemonize=True, close_fds=True) or not c.wait("RUNNING", START_TIMEOUT):
        raise BenchError(f"liblxc could not start {name}")


def liblxc_kill(name: str, lxcpath: Path) -> None:
    c = _container(name, lxcpath)
    if c.state != "STOPPED" and (not c.stop() or not c.wait("STOPPED", START_TIMEOUT)):
        raise BenchError(f"liblxc could not stop {name}")


def liblxc_ensure_stopped(name: str, lxcpath: Path) -> None:
    _container(name, lxcpath).wait("STOPPED", START_TIMEOUT)


def config_items(name: str, lxcpath: Path, key: str) -> list[str]:
    """A config item of a container as liblxc resolves it (includes followed)."""
    value = _container(name, lxcpath).get_config_item(key)
    items = [value] if isinstance(value, str) else list(value or [])
    return [item.strip() for item in items if item.strip()]


# -- references -----------------------------------------------------------------------------


def interpreter_reference() -> Step:
    """Starting the system Python and importing both bindings: the CLI's natural floor."""
    return Step("python", f"`python3 -c '{IMPORT_BINDINGS}'` (start-up reference)",
                Role.REFERENCE, lambda i: quiet([SYSTEM_PYTHON, "-c", IMPORT_BINDINGS]))
