"""Backups: the speed of `lxcow export` against `btrfs send > file` on the same data, and
the size of an incremental backup against the amount of data that changed.

The container holds incompressible files written straight into its rootfs.  Every system
writes its file into a directory of the same pool, which is removed after each round.  The
peer sends a read-only snapshot of the container that already exists; lxcow also has to
freeze-free snapshot the stopped container first (that is part of its time, as it is part of
any backup of a live system).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness import Outcome, Role, Step, Table, command, measure, progress, quiet
from hostpool import BenchPool
from systems import IMAGE, make_ctx

SOURCE = "data"
FILE_SIZE = 8 << 20
CHANGED = 10 << 20


def run_backup(pool: BenchPool, reps: int, data_mib: int) -> list[Table]:
    progress(f"backup: export of {data_mib} MiB against btrfs send, and an incremental")
    ctx = make_ctx(pool, golden=False)
    ctx.lx.create(IMAGE, [SOURCE])
    rootfs = ctx.rootfs(SOURCE)
    _fill(rootfs / "srv", data_mib << 20)
    ctx.lx.snapshot_create(SOURCE, "s1")
    snap = pool.lxcow_lxcpath / SOURCE / "snaps" / "s1" / "rootfs"
    out = pool.mnt / "backups"
    out.mkdir()

    def target(key: str, rnd: int) -> Path:
        return out / f"{key}-{rnd}"

    def clear(rnd: int) -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    def cli(key: str, *options: str) -> Step:
        flags = " ".join(["--instance-only", *options])
        return Step(key, f"lxcow CLI `export {flags}`", Role.LXCOW, lambda i: quiet(ctx.cli(
                "export", SOURCE, os.fspath(target(key, i)), "--instance-only", *options)),
            teardown=clear)

    steps = [
        cli("cli-none", "--compression", "none"),
        cli("cli-zstd"),
        Step("api", "lxcow API `export(..., instance_only=True, compression='none')`",
             Role.LXCOW, lambda i: ctx.lx.export(SOURCE, target("api", i), instance_only=True,
                                                compression="none"), teardown=clear),
        Step("send", "`btrfs send SNAPSHOT > file` (of the existing snapshot)", Role.PEER,
             lambda i: _send_to_file(snap, None, target("send", i)), teardown=clear),
    ]
    speed = Table("export", f"Export a stopped container holding {data_mib} MiB",
                  "one full backup of the container's current state written to a file on the "
                  "same pool", measure(steps, reps), group="backup")
    return [speed, _incremental(ctx, pool, snap, out)]


def _incremental(ctx: object, pool: BenchPool, s1: Path, out: Path) -> Table:
    """Change CHANGED bytes in place, snapshot, and compare what each system writes."""
    from systems import Ctx

    assert isinstance(ctx, Ctx)
    full = out / "full.lxb"
    ctx.lx.export(SOURCE, full)
    target = ctx.rootfs(SOURCE) / "srv" / "f0000"
    with open(target, "r+b") as f:
        f.write(os.urandom(CHANGED))
    ctx.lx.snapshot_create(SOURCE, "s2")
    s2 = pool.lxcow_lxcpath / SOURCE / "snaps" / "s2" / "rootfs"
    incremental = out / "incremental.lxb"
    info = ctx.lx.export(SOURCE, incremental, base=full)
    assert info is not None and info.bytes is not None
    send = out / "send-p"
    _send_to_file(s2, s1, send)
    rows = [
        Outcome("file", "lxcow incremental backup file (`export --base`)", Role.LXCOW,
                [float(incremental.stat().st_size)]),
        Outcome("streams", "its Btrfs streams, uncompressed", Role.LXCOW, [float(info.bytes)]),
        Outcome("send-p", "`btrfs send -p s1 s2` stream", Role.PEER,
                [float(send.stat().st_size)]),
        Outcome("changed", "data changed in the container", Role.REFERENCE, [float(CHANGED)]),
    ]
    return Table("export-incremental",
                 f"Incremental backup after changing {CHANGED >> 20} MiB in place",
                 "bytes written for a backup against the previous one", rows, unit="bytes",
                 per="backup", group="backup")


def _fill(directory: Path, size: int) -> None:
    directory.mkdir(parents=True)
    for i in range(max(1, size // FILE_SIZE)):
        (directory / f"f{i:04d}").write_bytes(os.urandom(FILE_SIZE))
    command(["sync"])


def _send_to_file(subvolume: Path, parent: Path | None, dest: Path) -> None:
    argv = ["btrfs", "-q", "send"]
    if parent is not None:
        argv += ["-p", os.fspath(parent)]
    with open(dest, "wb") as f:
        import subprocess

        proc = subprocess.run([*argv, os.fspath(subvolume)], stdout=f,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        from harness import BenchError

        raise BenchError(f"btrfs send: {proc.stderr.decode(errors='replace').strip()}")
