"""Advisory locks (flock) on pools, images and containers.

A lock is a file under the pool's ``.lxcow/locks`` directory.  It is taken by every command
that changes the object and released when the command ends, whatever way it ends: the kernel
drops a flock when its process dies, so a killed command never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from lxcow.errors import Busy, from_oserror
from lxcow.log import get as get_logger

log = get_logger(__name__)

DEFAULT_TIMEOUT = 60.0


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (held by pid {text})" if text.isdigit() else ""


@contextlib.contextmanager
def hold(
    path: Path,
    what: str,
    *,
    shared: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[None]:
    """Hold the lock file ``path`` for ``what``; wait up to ``timeout`` seconds, then Busy.

    The lock file is re-checked after it is taken, so that a holder may remove it (as delete
    does) without a waiter ending up holding a lock on an unlinked file.
    """
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise from_oserror(err, f"lock {path}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Busy(
                            f"{what} is locked by another command{_holder(fd)}",
                            hint="wait for it to finish, or raise --lock-timeout",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)

    if not shared:
        # Who holds it, for the Busy message of a waiter; a full pool must not stop us here.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
    log.debug("locked %s%s", what, " (shared)" if shared else "")
    try:
        yield
    finally:
        os.close(fd)


def try_hold(path: Path) -> int | None:
    """Take an exclusive lock on an existing file or directory without waiting.

    Returns the open descriptor (close it to release) or None if somebody holds it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove(path: Path) -> None:
    """Remove a lock file while holding its lock (waiters then retry on a fresh file)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
