"""The one place where lxcow makes Btrfs calls.

Subvolume work goes through libbtrfsutil (python3-btrfsutil); the few things it lacks are
plain syscalls made here.  Every call is logged at debug level and every failure becomes an
lxcow exception naming the path.  Nothing here runs the ``btrfs`` program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import os
from collections.abc import Mapping
from pathlib import Path

from lxcow.errors import LxcowError, NotFound, SystemFailure, from_oserror
from lxcow.log import get as get_logger

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import IO, Any

log = get_logger(__name__)

BTRFS_SUPER_MAGIC = 0x9123683E
FS_TREE_OBJECTID = 5


def _lib() -> Any:
    try:
        import btrfsutil
    except ImportError:
        raise SystemFailure(
            "the btrfsutil Python module is missing", hint="run ./install.sh"
        ) from None
    return btrfsutil


def _error(err: Exception, what: str) -> LxcowError:
    if isinstance(err, OSError) and err.errno is not None:
        if err.errno == errno.ENOTTY or err.errno == errno.EINVAL:
            return SystemFailure(f"{what}: not a Btrfs subvolume")
        return from_oserror(err, what)
    return SystemFailure(f"{what}: {err}")


@dataclasses.dataclass(frozen=True)
class SubvolumeInfo:
    id: int
    uuid: str
    parent_uuid: str | None
    received_uuid: str | None
    generation: int
    created: datetime.datetime
    readonly: bool


def _uuid(raw: bytes) -> str | None:
    """The canonical text form of a 16-byte UUID (the uuid module is slow to import)."""
    if raw == bytes(16):
        return None
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def info(path: Path) -> SubvolumeInfo:
    lib = _lib()
    log.debug("ioctl: subvolume info %s", path)
    try:
        raw = lib.subvolume_info(path)
    except lib.BtrfsUtilError as err:
        raise _error(err, f"subvolume {path}") from None
    return SubvolumeInfo(
        id=raw.id,
        uuid=_uuid(raw.uuid) or "",
        parent_uuid=_uuid(raw.parent_uuid),
        received_uuid=_uuid(raw.received_uuid),
        generation=raw.generation,
        created=datetime.datetime.fromtimestamp(raw.otime, tz=datetime.UTC),
        readonly=bool(raw.flags & 1),
    )


def is_subvolume(path: Path) -> bool:
    lib = _lib()
    try:
        return bool(lib.is_subvolume(path))
    except lib.BtrfsUtilError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _error(err, f"subvolume {path}") from None


def create(path: Path) -> None:
    lib = _lib()
    log.debug("ioctl: create subvolume %s", path)
    try:
        lib.create_subvolume(path)
    except lib.BtrfsUtilError as err:
        raise _error(err, f"create subvolume {path}") from None


def is_readonly(path: Path) -> bool:
    lib = _lib()
    try:
        return bool(lib.get_subvolume_read_only(path))
    except lib.BtrfsUtilError as err:
        raise _error(err, f"subvolume {path}") from None


def set_readonly(path: Path, readonly: bool) -> None:
    lib = _lib()
    log.debug("ioctl: set %s %s", path, "read-only" if readonly else "writable")
    try:
        lib.set_subvolume_read_only(path, readonly)
    except lib.BtrfsUtilError as err:
        raise _error(err, f"set read-only flag of {path}") from None


def nested(path: Path) -> list[tuple[str, bool]]:
    """The subvolumes below ``path``, parents first: (path relative to it, read-only)."""
    lib = _lib()
    log.debug("ioctl: list subvolumes below %s", path)
    try:
        with lib.SubvolumeIterator(path, info=True) as it:
            return [(rel, bool(sub.flags & 1)) for rel, sub in it]
    except lib.BtrfsUtilError as err:
        raise _error(err, f"list subvolumes below {path}") from None


def snapshot(source: Path, dest: Path, *, readonly: bool,
             nested_readonly: bool | Mapping[str, bool] | None = None) -> list[tuple[str, bool]]:
    """Snapshot ``source`` and every subvolume nested in it to ``dest``.

    ``readonly`` applies to the top subvolume.  Nested ones keep their own read-only flags,
    unless ``nested_readonly`` gives one flag for all of them or a flag per relative path.
    The kernel leaves an empty directory where a nested subvolume was; it is replaced by a
    snapshot of that subvolume.  On failure whatever was made is removed.  Returns the nested
    subvolumes of the source with their read-only flags, parents first.
    """
    lib = _lib()
    children = nested(source)
    log.debug(
        "ioctl: snapshot %s -> %s%s", source, dest, " (read-only)" if readonly else ""
    )
    try:
        lib.create_snapshot(source, dest, read_only=readonly and not children)
    except lib.BtrfsUtilError as err:
        raise _error(err, f"snapshot {source} to {dest}") from None
    if not children:
        return children

    def wanted(rel: str, current: bool) -> bool:
        if nested_readonly is None:
            return current
        if isinstance(nested_readonly, bool):
            return nested_readonly
        return nested_readonly.get(rel, current)

    try:
        for rel, _ in children:
            placeholder = dest / rel
            os.rmdir(placeholder)
            log.debug("ioctl: snapshot %s -> %s", source / rel, placeholder)
            lib.create_snapshot(source / rel, placeholder)
        for rel, child_ro in reversed(children):
            if wanted(rel, child_ro):
                set_readonly(dest / rel, True)
        if readonly:
            set_readonly(dest, True)
    except (OSError, lib.BtrfsUtilError) as err:
        delete(dest)
        raise _error(err, f"snapshot {source} to {dest}") from None
    return children


def delete(path: Path) -> None:
    """Delete a subvolume with every subvolume nested in it, read-only ones included."""
    lib = _lib()
    try:
        children = nested(path)
    except NotFound:
        return
    log.debug("ioctl: delete subvolume %s (%d nested)", path, len(children))
    try:
        if children:
            # A subvolume inside a read-only one cannot be unlinked: clear the flags first.
            for rel, ro in [("", is_readonly(path)), *children]:
                if ro:
                    set_readonly(path / rel if rel else path, False)
        lib.delete_subvolume(path, recursive=bool(children))
    except lib.BtrfsUtilError as err:
        raise _error(err, f"delete subvolume {path}") from None


def received_index(path: Path) -> dict[str, set[str]]:
    """received UUID -> UUIDs of the subvolumes carrying it, over the whole filesystem."""
    lib = _lib()
    log.debug("ioctl: list all subvolumes of %s", path)
    index: dict[str, set[str]] = {}
    try:
        with lib.SubvolumeIterator(path, top=FS_TREE_OBJECTID, info=True) as it:
            for _, sub in it:
                received = _uuid(sub.received_uuid)
                if received:
                    index.setdefault(received, set()).add(_uuid(sub.uuid) or "")
    except lib.BtrfsUtilError as err:
        raise _error(err, f"list subvolumes of {path}") from None
    return index


def sync(path: Path) -> None:
    """Commit the filesystem's transaction, so that deleted space is returned at once."""
    lib = _lib()
    log.debug("ioctl: sync %s", path)
    try:
        lib.sync(path)
    except lib.BtrfsUtilError as err:
        raise _error(err, f"sync {path}") from None


def syncfs(path: Path) -> None:
    """Write out the dirty data of the filesystem holding ``path`` (syncfs(2))."""
    from lxcow import libc

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        log.debug("syscall: syncfs %s", path)
        libc.syncfs(fd)
    except OSError as err:
        raise _error(err, f"syncfs {path}") from None
    finally:
        os.close(fd)


def is_btrfs(path: Path) -> bool:
    """Whether ``path`` lies on a Btrfs filesystem (statfs(2) magic)."""
    from lxcow import libc

    try:
        return libc.statfs_type(path) == BTRFS_SUPER_MAGIC
    except OSError as err:
        raise _error(err, f"statfs {path}") from None


def fsid(path: Path) -> str:
    """The UUID of the Btrfs filesystem holding ``path``, from BTRFS_IOC_FS_INFO."""
    import fcntl

    # struct btrfs_ioctl_fs_info_args is 1024 bytes; fsid sits at offset 16.
    buf = bytearray(1024)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        log.debug("ioctl: fs info %s", path)
        fcntl.ioctl(fd, 0x8400941F, buf)
    except OSError as err:
        raise _error(err, f"filesystem info of {path}") from None
    finally:
        os.close(fd)
    return _uuid(bytes(buf[16:32])) or ""


def remove_tree(path: Path) -> None:
    """Remove a directory tree that may hold subvolumes, deleting those with the ioctl."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat

    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if st.st_ino == 256 and is_subvolume(path):
        delete(path)
        return
    with os.scandir(path) as entries:
        children = [Path(e.path) for e in entries]
    for child in children:
        remove_tree(child)
    os.rmdir(path)


def send(subvolume: Path,
         parent: Path | None = None) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A Btrfs send stream of a read-only subvolume (incremental against ``parent``)."""
    from lxcow.run import reading

    argv: list[str | os.PathLike[str]] = ["btrfs", "-q", "send"]
    if parent is not None:
        argv += ["-p", parent]
    return reading([*argv, subvolume])


def receive(directory: Path) -> contextlib.AbstractContextManager[IO[bytes]]:
    """Feed a send stream to ``btrfs receive`` into ``directory``."""
    from lxcow.run import writing

    return writing(["btrfs", "-q", "receive", directory])


def dump() -> contextlib.AbstractContextManager[IO[bytes]]:
    """Feed a send stream to ``btrfs receive --dump``, which parses it without a filesystem."""
    from lxcow.run import writing

    return writing(["btrfs", "receive", "--dump"])
