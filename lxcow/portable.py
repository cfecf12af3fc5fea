"""Portable backups: a plain tarball of a container's rootfs and config, for any host.

Members: ``lxcow-portable.json`` (format, container name, config, image) first, then the
root filesystem under ``rootfs/``, written by GNU tar with numeric owners, extended
attributes and ACLs.  ``tar -xf`` reads it; ``lxcow import`` reads it on any pool, with the
same safety checks as an image import.  Nested subvolumes become plain directories.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Callable
from pathlib import Path

from lxcow import btrfs, containers, lxcconfig, tarsafe
from lxcow.errors import AlreadyExists, BadData, NotFound, UsageError
from lxcow.fsutil import read_json, rename_noreplace, write_new, write_new_json
from lxcow.pool import Pool, usage
from lxcow.run import run

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

FORMAT = "lxcow-portable"
VERSION = 1
META = "lxcow-portable.json"

Progress = Callable[[int, int, str], None]


def export(pool: Pool, name: str, path: Path, *, compression: str = "zstd") -> None:
    d = containers.require(pool, name)
    if compression not in ("zstd", "none"):
        raise UsageError(f"unknown compression {compression}", hint="use zstd or none")
    if os.path.lexists(path):
        raise AlreadyExists(f"{path} already exists", hint="give a new file name")
    if not path.parent.is_dir():
        raise NotFound(f"directory {path.parent} not found")
    try:
        meta = read_json(d / containers.META)
    except (FileNotFoundError, ValueError):
        meta = {}
    with containers.lock(pool, name), pool.scratch(f"portable-{name}") as scratch:
        with containers.frozen(pool, name):
            btrfs.snapshot(d / "rootfs", scratch / "rootfs", readonly=True)
        (scratch / META).write_text(json.dumps({
            "format": FORMAT, "version": VERSION, "name": name,
            "config": (d / "config").read_text(),
            "image": meta.get("image", ""), "image_alias": meta.get("image_alias", ""),
            "created": meta.get("created", ""),
            "exported": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        }, indent=2))
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            argv: list[str | os.PathLike[str]] = [
                "tar", "--create", "--file", tmp, "--numeric-owner", "--xattrs",
                "--xattrs-include=*", "--acls", "--sparse", "-C", scratch, META, "rootfs"]
            if compression == "zstd":
                argv.insert(1, "--zstd")
            run(argv)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            rename_noreplace(tmp, path, f"{path}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def import_tarball(pool: Pool, path: Path, new_name: str | None,
                   progress: Progress | None) -> str:
    from lxcow.compression import open_decompressed

    meta = _read_meta(path)
    name = new_name or str(meta.get("name", ""))
    containers.check_new_names(pool, [name], hint="import with --name NEW")
    final = pool.lxcpath / name
    with containers.lock(pool, name), pool.scratch(f"import-{name}") as scratch:
        c = scratch / "container"
        c.mkdir()
        btrfs.create(c / "rootfs")
        _, _, free = usage(pool)
        def report(done: int, total: int) -> None:
            if progress:
                progress(done, total, "")

        with open_decompressed(os.fspath(path), progress=report) as (stream, _):
            tarsafe.extract(stream, c / "rootfs", limit=free, strip_prefix="rootfs")
        config = lxcconfig.retarget(str(meta["config"]), name, final,
                                    new_macs=name != meta.get("name"))
        write_new(c / "config", config)
        write_new_json(c / containers.META, {
            "image": meta.get("image", ""), "image_alias": meta.get("image_alias", ""),
            "created": meta.get("created", ""), "imported_from": os.fspath(path)})
        rename_noreplace(c, final, f"container {name}")
    return name


def _read_meta(path: Path) -> dict[str, Any]:
    import tarfile

    from lxcow.compression import decode_errors, open_decompressed

    errors: tuple[type[BaseException], ...] = (tarfile.TarError, ValueError, *decode_errors())
    try:
        with open_decompressed(os.fspath(path)) as (stream, _):
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                first = tar.next()
                if first is None or first.name.removeprefix("./") != META:
                    raise BadData(f"{path} is not a portable lxcow backup")
                f = tar.extractfile(first)
                meta = json.loads(f.read() if f else b"")
    except errors as err:
        raise BadData(f"{path} is not a readable portable backup: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise BadData(f"{path} is not a portable lxcow backup")
    return meta
