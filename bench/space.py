"""Space: what 100 clones of one container cost the pool, against LXC's copies.

Quotas are enabled on this benchmark's own pool only (it is a fresh filesystem that nothing
else uses).  Two numbers per system: the growth of the filesystem's used bytes (data,
metadata and system chunks, read from sysfs after a transaction commit), divided by the
number of clones, which counts everything the clones cost, their config files included; and
each clone's exclusive bytes from its quota group, for systems whose clones are subvolumes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import btrfsutil
from harness import Outcome, Role, Table, command, progress, quiet
from hostpool import BenchPool
from systems import GOLDEN, IMAGE, Ctx, lxc_template, make_ctx, raw_snapshot

SOURCE = "src"
DIR_GOLDEN = "golden-dir"
ALLOCATION_KINDS = ("data", "metadata", "system")


@dataclasses.dataclass(frozen=True)
class Cloner:
    key: str
    label: str
    role: Role
    make: Callable[[str], object]
    rootfs: Callable[[str], Path] | None


def run_space(pool: BenchPool, count: int) -> list[Table]:
    progress(f"space: {count} clones per system")
    mnt = os.fspath(pool.mnt)
    command(["btrfs", "quota", "enable", mnt])
    command(["btrfs", "quota", "rescan", "-w", mnt])
    ctx = make_ctx(pool)
    ctx.lx.create(IMAGE, [SOURCE])
    dir_lxcpath = pool.lxcpath("lxc-dir")
    lxc_template(ctx, DIR_GOLDEN, backing="dir", lxcpath=dir_lxcpath)
    results = [_measure(pool, c, count) for c in _cloners(ctx, dir_lxcpath)]
    pool_table = Table(
        "space-pool", f"Space used by {count} clones (whole pool)",
        f"growth of the pool's used bytes (data + metadata + system) over {count} clones, "
        "per clone", [r[0] for r in results], unit="bytes", per="clone",
        notes=[r[2] for r in results], group="space")
    qgroup_table = Table(
        "space-qgroup", f"Exclusive bytes of each of {count} clones (quota groups)",
        "exclusive bytes of each clone's rootfs subvolume; the distribution is over the "
        "clones", [r[1] for r in results], unit="bytes", per="clone", group="space")
    return [pool_table, qgroup_table]


def _cloners(ctx: Ctx, dir_lxcpath: Path) -> list[Cloner]:
    lxcow_rootfs = ctx.rootfs
    return [
        Cloner("api", f"lxcow API copy (`copy('{SOURCE}', NEW)`)", Role.LXCOW,
               lambda n: ctx.lx.copy(SOURCE, n), lxcow_rootfs),
        Cloner("api-create", f"lxcow API create (`create('{IMAGE}', [NEW])`, from the image)",
               Role.LXCOW,
               lambda n: ctx.lx.create(IMAGE, [n]), lxcow_rootfs),
        Cloner("lxc", "LXC (`lxc-copy -s -B btrfs`)", Role.PEER,
               lambda n: ctx.lxc_copy(GOLDEN, n),
               lambda n: ctx.lxcpath / n / "rootfs"),
        Cloner("lxc-dir", "LXC (`lxc-copy -B dir`, rsync)", Role.PEER,
               lambda n: quiet(ctx.lxc("lxc-copy", "-n", DIR_GOLDEN, "-N", n, "-B", "dir",
                                       lxcpath=dir_lxcpath)), None),
        Cloner("raw", "libbtrfsutil `create_snapshot` (floor)", Role.FLOOR,
               lambda n: raw_snapshot(ctx.rootfs(SOURCE), ctx.raw_path(n)),
               ctx.raw_path),
    ]


def _measure(pool: BenchPool, cloner: Cloner, count: int) -> tuple[Outcome, Outcome, str]:
    names = [f"{cloner.key}-{j}" for j in range(count)]
    before = _used_bytes(pool)
    start = time.perf_counter()
    for name in names:
        cloner.make(name)
    elapsed = time.perf_counter() - start
    grown = _used_bytes(pool) - before
    whole = Outcome(cloner.key, cloner.label, cloner.role, [grown / count])
    each = Outcome(cloner.key, cloner.label, cloner.role)
    if cloner.rootfs is None:
        each.skipped = "not applicable: the copies are plain directories, not subvolumes"
    else:
        each.samples = [float(_exclusive(pool, cloner.rootfs(n))) for n in names]
    note = f"{cloner.label}: {count} clones made in {elapsed:.2f} s"
    return whole, each, note


def _used_bytes(pool: BenchPool) -> int:
    btrfsutil.sync(os.fspath(pool.mnt))
    base = Path("/sys/fs/btrfs") / pool.fsid / "allocation"
    return sum(int((base / kind / "bytes_used").read_text()) for kind in ALLOCATION_KINDS)


def _exclusive(pool: BenchPool, subvolume: Path) -> int:
    subvol_id = btrfsutil.subvolume_id(os.fspath(subvolume))
    path = Path("/sys/fs/btrfs") / pool.fsid / "qgroups" / f"0_{subvol_id}" / "exclusive"
    return int(path.read_text())
