"""System calls that Python 3.11's os module lacks: renameat2, syncfs and statfs.

ctypes is imported on first use, not at start-up.  Failures raise OSError with the errno.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


class _Lib:
    handle: Any = None


def _libc() -> Any:
    if _Lib.handle is None:
        import ctypes

        _Lib.handle = ctypes.CDLL(None, use_errno=True)
    return _Lib.handle


def _raise(*paths: os.PathLike[str] | str) -> None:
    import ctypes

    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), *[os.fspath(p) for p in paths[:1]])


def renameat2(old: os.PathLike[str] | str, new: os.PathLike[str] | str, flags: int) -> None:
    if _libc().renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        _raise(old)


def syncfs(fd: int) -> None:
    if _libc().syncfs(fd) != 0:
        _raise()


def statfs_type(path: os.PathLike[str] | str) -> int:
    """The f_type (filesystem magic) of the filesystem holding ``path``."""
    import ctypes

    class StatFs(ctypes.Structure):
        _fields_ = [
            ("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
            ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong),
            ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
            ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2),
            ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
            ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4),
        ]

    buf = StatFs()
    if _libc().statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        _raise(path)
    return int(buf.f_type) & 0xFFFFFFFF
