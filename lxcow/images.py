"""Images: read-only subvolumes named by the SHA-256 fingerprint of their content.

Layout: ``images/<fingerprint>/rootfs`` (read-only subvolume), ``image.json`` (metadata) and
``lxc.conf`` (LXC settings the image needs).  Aliases are symbolic links
``.lxcow/aliases/<alias> -> <fingerprint>``, replaced atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import stat
from collections.abc import Callable
from pathlib import Path

from lxcow import btrfs, names
from lxcow.errors import BadData, NotFound, UsageError
from lxcow.fsutil import read_json, rename_noreplace, write_new, write_new_json
from lxcow.log import get as get_logger
from lxcow.pool import Pool, usage

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

Progress = Callable[[int, int], None]
LXC_TEMPLATE_CONFIG = "/usr/share/lxc/config"


@dataclasses.dataclass(frozen=True)
class Image:
    fingerprint: str
    aliases: tuple[str, ...]
    created: str
    source: str
    description: str
    architecture: str
    size: int
    path: str

    @property
    def short(self) -> str:
        return self.fingerprint[:12]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


# -- lookup -------------------------------------------------------------------------------


def _alias_map(pool: Pool) -> dict[str, str]:
    result = {}
    try:
        entries = os.listdir(pool.aliases)
    except FileNotFoundError:
        return {}
    for alias in entries:
        if alias.startswith("."):
            continue
        try:
            result[alias] = os.readlink(pool.aliases / alias)
        except OSError:
            continue
    return result


def resolve(pool: Pool, ref: str) -> str:
    """The fingerprint an alias, a fingerprint or a unique fingerprint prefix refers to."""
    try:
        fp = os.readlink(pool.aliases / ref) if "/" not in ref and ref not in (".", "..") else ""
    except OSError:
        fp = ""
    if fp and (pool.images / fp).is_dir():
        return fp
    if names.is_fingerprint_prefix(ref):
        matches = [e for e in os.listdir(pool.images) if e.startswith(ref) and
                   names.is_fingerprint(e)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"image {ref} is ambiguous", hint="give more of the fingerprint")
    raise NotFound(f"image {ref} not found", hint="see 'lxcow image list'")


def _load(pool: Pool, fp: str, aliases: dict[str, str]) -> Image:
    meta = read_json(pool.images / fp / "image.json")
    return Image(
        fingerprint=fp,
        aliases=tuple(sorted(a for a, target in aliases.items() if target == fp)),
        created=meta.get("created", ""),
        source=meta.get("source", ""),
        description=meta.get("description", ""),
        architecture=meta.get("architecture", ""),
        size=int(meta.get("size", 0)),
        path=os.fspath(pool.images / fp / "rootfs"),
    )


def get(pool: Pool, ref: str) -> Image:
    return _load(pool, resolve(pool, ref), _alias_map(pool))


def list_images(pool: Pool) -> list[Image]:
    aliases = _alias_map(pool)
    fps = sorted(e for e in os.listdir(pool.images) if names.is_fingerprint(e))
    return [_load(pool, fp, aliases) for fp in fps]


def lxc_config(pool: Pool, fp: str) -> str:
    try:
        return (pool.images / fp / "lxc.conf").read_text()
    except FileNotFoundError:
        return ""


# -- adding -------------------------------------------------------------------------------


def tree_digest(root: Path) -> str:
    """SHA-256 over a tree's names, types, owners, modes, link targets and file contents."""
    import hashlib

    h = hashlib.sha256(b"lxcow-tree-1\0")

    def walk(path: Path, rel: str) -> None:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            name = f"{rel}/{e.name}"
            h.update(f"{name}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(e.path).encode() + b"\0")
            elif stat.S_ISREG(st.st_mode):
                with open(e.path, "rb") as f:
                    h.update(hashlib.file_digest(f, "sha256").digest())
            elif stat.S_ISDIR(st.st_mode):
                walk(Path(e.path), name)
            else:
                h.update(f"{st.st_rdev}\0".encode())

    walk(root, "")
    return h.hexdigest()


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _install(pool: Pool, scratch: Path, fp: str, meta: dict[str, Any], lxc_conf: str,
             alias: str | None) -> Image:
    """Move a finished image from ``scratch`` into the store, unless it is already there."""
    with pool.lock("image", fp):
        target = pool.images / fp
        if target.exists():
            log.info("image %s is already in the pool", fp[:12])
        else:
            btrfs.set_readonly(scratch / "rootfs", True)
            write_new_json(scratch / "image.json", meta)
            write_new(scratch / "lxc.conf", lxc_conf)
            rename_noreplace(scratch, target, f"image {fp[:12]}")
    if alias:
        set_alias(pool, alias, fp)
    return get(pool, fp)


def build_busybox(pool: Pool, alias: str | None = None) -> Image:
    from lxcow import busybox

    if alias:
        names.check_alias(alias)
    binary = busybox.find_static_busybox()
    with pool.scratch("image-busybox") as scratch:
        btrfs.create(scratch / "rootfs")
        busybox.populate(scratch / "rootfs", binary)
        fp = tree_digest(scratch / "rootfs")
        meta = {
            "created": _now(),
            "source": f"busybox ({binary})",
            "description": "busybox from the host",
            "architecture": os.uname().machine,
            "size": _tree_size(scratch / "rootfs"),
        }
        return _install(pool, scratch, fp, meta, busybox.LXC_CONFIG, alias)


def import_tarball(pool: Pool, rootfs_tarball: Path, meta_tarball: Path | None = None,
                   alias: str | None = None, progress: Progress | None = None) -> Image:
    """Import an LXC or Incus style image (split rootfs + metadata, or unified)."""
    from lxcow import imagemeta, tarsafe
    from lxcow.compression import open_decompressed

    if alias:
        names.check_alias(alias)
    files = [p for p in (meta_tarball, rootfs_tarball) if p is not None]
    for p in files:
        if not p.is_file():
            raise NotFound(f"image file {p} not found")

    identity = [_identity(p) for p in files]
    fp = _file_digest(files)
    if (pool.images / fp).is_dir():
        log.info("image %s is already in the pool", fp[:12])
        if alias:
            set_alias(pool, alias, fp)
        return get(pool, fp)

    meta_info = imagemeta.read(meta_tarball) if meta_tarball else None
    unified = meta_tarball is None and imagemeta.is_unified(rootfs_tarball)
    if unified:
        meta_info = imagemeta.read(rootfs_tarball)

    with pool.scratch("image-import") as scratch:
        rootfs = scratch / "rootfs"
        btrfs.create(rootfs)
        _, _, free = usage(pool)
        with open_decompressed(os.fspath(rootfs_tarball), progress=progress) as (stream, _):
            result = tarsafe.extract(stream, rootfs, limit=free,
                                     strip_prefix="rootfs" if unified else "")
        # Hashing again would read the files a third time; their identity tells as much.
        if [_identity(p) for p in files] != identity:
            raise BadData(f"{rootfs_tarball} changed while it was being imported")
        meta = {
            "created": _now(),
            "source": os.fspath(rootfs_tarball.resolve()),
            "description": meta_info.description if meta_info else "",
            "architecture": meta_info.architecture if meta_info else "",
            "size": result.bytes,
        }
        conf = meta_info.lxc_config if meta_info else ""
        return _install(pool, scratch, fp, meta, conf, alias)


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _file_digest(files: list[Path]) -> str:
    """LXD's fingerprint of a split image: SHA-256 of the metadata then the rootfs file."""
    import hashlib

    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


# -- aliases and deletion -----------------------------------------------------------------


def set_alias(pool: Pool, alias: str, ref: str) -> str:
    names.check_alias(alias)
    fp = resolve(pool, ref)
    with pool.lock("aliases", "all"):
        tmp = pool.aliases / f".{alias}.new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(fp, tmp)
        old = _alias_map(pool).get(alias)
        os.rename(tmp, pool.aliases / alias)
    if old and old != fp:
        log.info("alias %s moved from image %s to %s", alias, old[:12], fp[:12])
    return fp


def remove_alias(pool: Pool, alias: str) -> None:
    names.check_alias(alias)
    with pool.lock("aliases", "all"):
        try:
            os.unlink(pool.aliases / alias)
        except FileNotFoundError:
            raise NotFound(f"image alias {alias} not found") from None


def delete(pool: Pool, ref: str) -> Image:
    """Delete an image and its aliases; containers made from it are independent and stay."""
    fp = resolve(pool, ref)
    with pool.lock("image", fp):
        image = get(pool, fp)
        with pool.lock("aliases", "all"):
            for alias in image.aliases:
                os.unlink(pool.aliases / alias)
        with pool.discard(pool.images / fp, f"image-delete-{fp[:12]}"):
            pass
    return image

