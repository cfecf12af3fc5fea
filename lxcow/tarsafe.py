"""Extracting untrusted tar archives into a root filesystem, refusing anything unsafe.

Refused, with the member named: absolute member names, ``..`` components, members whose path
passes through a symbolic link or a non-directory, relative links that resolve outside the
tree, hard links to anything but an earlier regular file of the archive, unknown member types,
and members larger than the space allowed.  Absolute symbolic link targets are kept: they are
resolved inside the container, where ``/`` is the root filesystem.

Owners (numeric), modes, times, device nodes and extended attributes are restored, so a
distribution image keeps its setuid programs and file capabilities.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
import tarfile
from pathlib import Path

from lxcow.errors import BadData, from_oserror

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import IO


@dataclasses.dataclass
class Extracted:
    members: int = 0
    bytes: int = 0


def _clean_name(raw: str, strip_prefix: str) -> str | None:
    """The member's path relative to the tree, '' for the root itself, None to skip."""
    name = raw
    if name.startswith("/"):
        raise BadData(f"archive member {raw!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadData(f"archive member {raw!r} contains '..'")
    if strip_prefix:
        if not parts or parts[0] != strip_prefix:
            return None
        parts = parts[1:]
    return "/".join(parts)


def _link_inside(name: str, target: str) -> bool:
    if target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return resolved != ".." and not resolved.startswith("../")


class _Checker:
    """Tracks what the archive has made so far, to vet each new member against it."""

    def __init__(self, limit: int, strip_prefix: str) -> None:
        self.limit = limit
        self.strip_prefix = strip_prefix
        self.kinds: dict[str, str] = {"": "dir"}
        self.total = 0

    def vet(self, m: tarfile.TarInfo, name: str) -> str | None:
        """Refuse an unsafe member; return a hard link's target relative to the tree."""
        parent = posixpath.dirname(name)
        while True:
            kind = self.kinds.get(parent)
            if kind is not None and kind != "dir":
                raise BadData(f"archive member {m.name!r} lies below a {kind}, not a directory")
            if not parent:
                break
            parent = posixpath.dirname(parent)

        if m.issym() and not _link_inside(name, m.linkname):
            raise BadData(f"archive member {m.name!r} links outside the root: {m.linkname!r}")
        link_target = None
        if m.islnk():
            try:
                link_target = _clean_name(m.linkname, self.strip_prefix)
            except BadData:
                link_target = None
            if link_target is None or self.kinds.get(link_target) != "file":
                raise BadData(
                    f"archive member {m.name!r} is a hard link to {m.linkname!r}, "
                    "which is not an earlier file of the archive"
                )
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.ischr() or m.isblk()
                or m.isfifo()):
            raise BadData(f"archive member {m.name!r} has an unsupported type")

        if m.isreg():
            self.total += m.size
            if m.size > self.limit or self.total > self.limit:
                raise BadData(
                    f"archive member {m.name!r} ({m.size} bytes) does not fit in the "
                    f"{self.limit} bytes available"
                )

        kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
        if not (m.isreg() or m.islnk()):
            kind = kind if m.isdir() or m.issym() else "special file"
        self.kinds[name] = kind
        return link_target


class _TailKeeper:
    """Passes reads through and keeps the last bytes read, to check the end-of-archive block.

    Python's tarfile stops quietly at a truncated or damaged header; a whole archive ends with
    a block of zeros at the offset where the iteration stopped.
    """

    KEEP = 1 << 16

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.tail = b""
        self.tail_start = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.tail += data
        if len(self.tail) > self.KEEP:
            cut = len(self.tail) - self.KEEP
            self.tail = self.tail[cut:]
            self.tail_start += cut
        return data

    def ends_properly_at(self, offset: int) -> bool:
        start = offset - self.tail_start
        if start < 0:
            return False
        block = self.tail[start:start + tarfile.BLOCKSIZE]
        if len(block) < tarfile.BLOCKSIZE:
            block += self.read(tarfile.BLOCKSIZE - len(block))
        return len(block) == tarfile.BLOCKSIZE and block.count(0) == tarfile.BLOCKSIZE


def _make_room(target: str, m: tarfile.TarInfo) -> None:
    """A later member replaces an earlier one: never write through what was there."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not m.isdir():
            raise BadData(f"archive member {m.name!r} replaces a directory")
        return
    os.unlink(target)


def _only_zeros_follow(stream: _TailKeeper) -> bool:
    """Read to the end (so that the compressor checks its checksum); only padding may follow."""
    while chunk := stream.read(1 << 16):
        if chunk.count(0) != len(chunk):
            return False
    return True


def _set_xattrs(path: str, m: tarfile.TarInfo) -> None:
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            attr = key[len("SCHILY.xattr."):]
            os.setxattr(path, attr, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)


def extract(stream: IO[bytes], dest: Path, *, limit: int, strip_prefix: str = "") -> Extracted:
    """Extract the tar ``stream`` into the existing empty directory ``dest``.

    ``strip_prefix`` keeps only members below that top-level directory (the ``rootfs/`` of a
    unified image).  Raises BadData on anything unsafe, truncated or corrupt.
    """
    checker = _Checker(limit, strip_prefix)
    result = Extracted()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    keeper = _TailKeeper(stream)
    try:
        with tarfile.open(fileobj=keeper, mode="r|", errorlevel=2) as tf:  # type: ignore[call-overload]
            for m in tf:
                name = _clean_name(m.name, strip_prefix)
                if name is None:
                    continue
                link_target = checker.vet(m, name)
                target = os.path.join(dest, name) if name else os.fspath(dest)
                if name:
                    _make_room(target, m)
                if link_target is not None:
                    os.link(os.path.join(dest, link_target), target)
                    result.members += 1
                    continue
                if name:
                    m.name = name
                    tf.extract(m, dest, set_attrs=True, numeric_owner=True)
                if m.isdir():
                    dirs.append((target, m))
                else:
                    _set_xattrs(target, m)
                result.members += 1
                result.bytes += m.size if m.isreg() else 0
            if not keeper.ends_properly_at(tf.offset) or not _only_zeros_follow(keeper):
                raise BadData("archive is truncated or damaged: it does not end properly")
            for target, m in reversed(dirs):
                if target == os.fspath(dest):
                    os.chown(target, m.uid, m.gid)
                    os.chmod(target, m.mode)
                _set_xattrs(target, m)
                os.utime(target, (m.mtime, m.mtime))
    except BadData:
        raise
    except (tarfile.TarError, EOFError) as err:
        raise BadData(f"archive is damaged or truncated: {err}") from None
    except Exception as err:
        from lxcow.compression import decode_errors

        # Checked before OSError: gzip reports a bad checksum as an OSError.
        if isinstance(err, decode_errors()):
            raise BadData(f"archive is damaged or truncated: {err}") from None
        if isinstance(err, OSError):
            raise from_oserror(err, "extract image") from None
        raise
    if result.members == 0:
        raise BadData("archive holds no files")
    return result
