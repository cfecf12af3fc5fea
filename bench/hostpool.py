"""The benchmark's own Btrfs pools: a sparse loop file, formatted and mounted under a temp dir.

Every pool is torn down on the way out, whatever happened: its containers are killed, any
mount below it is unmounted, then the pool itself, then its loop device is detached and the
temporary directory removed.  SIGINT, SIGTERM and SIGHUP are held back while that runs, so a
second Ctrl-C cannot leave a mount behind; they take effect once the pool is gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import BenchError, command, progress

PREFIX = "lxcow-bench-"
POOL_SIZE = 4 * 1024**3
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
UMOUNT_ATTEMPTS = 10


class BenchPool:
    """Paths on one mounted benchmark filesystem."""

    def __init__(self, root: Path, mnt: Path, device: str) -> None:
        self.root = root
        self.mnt = mnt
        self.device = device
        self.lxcpaths: list[Path] = []

    @property
    def state_dir(self) -> Path:
        """lxcow's state directory (off the pool; its pool is the ``lxcow`` dir on it)."""
        return self.root / "state"

    @property
    def lxcow_source(self) -> Path:
        return self.mnt / "lxcow"

    @property
    def lxcow_lxcpath(self) -> Path:
        return self.lxcow_source / "containers"

    @property
    def raw(self) -> Path:
        """Where the raw libbtrfsutil steps put their subvolumes."""
        return self.mnt / "raw"

    def lxcpath(self, name: str = "lxc") -> Path:
        """A directory on the pool used as an lxcpath by LXC's own tools."""
        path = self.mnt / name
        path.mkdir(exist_ok=True)
        return path

    def add_lxcpath(self, path: Path) -> None:
        """An lxcpath off the pool whose containers must be killed before it is unmounted."""
        if path not in self.lxcpaths:
            self.lxcpaths.append(path)

    @functools.cached_property
    def fsid(self) -> str:
        """The filesystem's UUID, which names it in /sys/fs/btrfs."""
        return command(["findmnt", "-n", "-o", "UUID", "--mountpoint",
                        os.fspath(self.mnt)]).strip()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the duration of the block."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def bench_pool(label: str, *, size: int = POOL_SIZE) -> Iterator[BenchPool]:
    """A fresh Btrfs filesystem on a loop device, mounted under a new temporary directory."""
    stack = contextlib.ExitStack()
    try:
        with shielded():
            pool = _make(stack, label, size)
        yield pool
    finally:
        with shielded():
            stack.close()


def _make(stack: contextlib.ExitStack, label: str, size: int) -> BenchPool:
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{label}-"))
    stack.callback(_remove_root, root)
    image = root / "disk.img"
    with open(image, "wb") as f:
        f.truncate(size)
    command(["mkfs.btrfs", "-q", "-f", "-L", f"bench-{label}", os.fspath(image)])

    device = command(["losetup", "--find", "--show", os.fspath(image)]).strip()
    stack.callback(_detach, device)
    mnt = root / "mnt"
    mnt.mkdir()
    command(["mount", "-t", "btrfs", device, os.fspath(mnt)])
    pool = BenchPool(root, mnt, device)
    stack.callback(_unmount, mnt)
    stack.callback(_kill_containers, pool)
    pool.raw.mkdir()
    progress(f"pool {label}: {device} on {mnt}")
    return pool


# -- teardown -------------------------------------------------------------------------------


def _candidate_lxcpaths(pool: BenchPool) -> list[Path]:
    """Registered lxcpaths and every directory that could be one on the pool."""
    found = [*pool.lxcpaths]
    for entry in sorted(pool.mnt.iterdir()):
        found += [p for p in (entry, entry / "containers") if p.is_dir() and p not in found]
    return found


def _kill_containers(pool: BenchPool) -> None:
    for lxcpath in _candidate_lxcpaths(pool):
        running = command(["lxc-ls", "-P", os.fspath(lxcpath), "--running", "-1"]).split()
        for name in running:
            with contextlib.suppress(BenchError):
                command(["lxc-stop", "-k", "-P", os.fspath(lxcpath), "-n", name], timeout=60)


def submounts(path: Path) -> list[Path]:
    """Mount points strictly below ``path`` in this mount namespace, deepest first."""
    prefix = os.fspath(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _unmount(mnt: Path) -> None:
    for sub in submounts(mnt):
        unmount_point(sub)
    unmount_point(mnt)


def unmount_point(point: Path) -> None:
    for attempt in range(UMOUNT_ATTEMPTS):
        try:
            command(["umount", os.fspath(point)], timeout=60)
            return
        except BenchError as err:
            if not os.path.ismount(point):
                return
            if attempt == UMOUNT_ATTEMPTS - 1:
                progress(f"{point} stays busy ({err}); detaching it lazily")
                command(["umount", "-l", os.fspath(point)], timeout=60)
                return
            time.sleep(0.5)


def _detach(device: str) -> None:
    command(["losetup", "-d", device], timeout=60)


def _remove_root(root: Path) -> None:
    mnt = root / "mnt"
    if mnt.exists() and os.path.ismount(mnt):
        raise BenchError(f"{mnt} is still mounted; not removing {root}")
    shutil.rmtree(root)
