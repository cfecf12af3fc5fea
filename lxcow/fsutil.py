"""Small filesystem helpers: atomic writes and renames that never replace."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from lxcow import libc
from lxcow.errors import AlreadyExists, from_oserror

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any


def rename_noreplace(old: Path, new: Path, what: str) -> None:
    """Move ``old`` to ``new``; fail with AlreadyExists if ``new`` is there, atomically."""
    try:
        libc.renameat2(old, new, libc.RENAME_NOREPLACE)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise AlreadyExists(f"{what} already exists") from None
        raise from_oserror(err, f"rename {old} to {new}") from None


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE)."""
    try:
        libc.renameat2(a, b, libc.RENAME_EXCHANGE)
    except OSError as err:
        raise from_oserror(err, f"exchange {a} and {b}") from None


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write a file under a temporary name beside it, flush it, then rename it into place."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise from_oserror(err, f"write {path}") from None


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, _json_text(data))


def write_new(path: Path, data: str) -> None:
    """Write a file of an object still being built in the pool's temporary area.

    Nobody sees it before the object is renamed into place, so it needs neither a temporary
    name nor an fsync of its own: a killed command leaves the page cache intact, and the
    ``flushoncommit`` mount option of lxcow's pools puts the data in the same transaction as
    the rename that makes the object visible.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise from_oserror(err, f"write {path}") from None


def write_new_json(path: Path, data: Any) -> None:
    write_new(path, _json_text(data))


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)
