"""The pool: one mounted Btrfs filesystem (or directory on one) that holds everything.

The state directory records where the pool lives in ``pool.json``::

    <state dir>/pool.json          kind (loop, block, dir), source, mount point, fsid
    <state dir>/disks/default.img  the loop file of the default pool
    <state dir>/pool/              mount point of a loop or block pool
    <pool>/containers/             an LXC lxcpath
    <pool>/images/<fingerprint>/   images
    <pool>/.lxcow/{locks,tmp,aliases}

Objects are built in ``.lxcow/tmp`` under a hidden name and renamed into place last.  Each
temporary directory is flock-ed by the command building it; one that nobody holds is a
leftover of a killed command and is removed by the next command that opens the pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
from collections.abc import Iterator
from pathlib import Path

from lxcow import btrfs, locks
from lxcow.errors import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    UsageError,
    from_oserror,
)
from lxcow.fsutil import read_json, write_atomic, write_json, write_new_json
from lxcow.log import get as get_logger
from lxcow.run import run

log = get_logger(__name__)

GIB = 1024**3
MIN_DEFAULT_SIZE = 5 * GIB
MAX_DEFAULT_SIZE = 30 * GIB
MIN_SIZE = 256 * 1024**2
# flushoncommit: a transaction commits file data with the renames that publish new objects,
# so that a crash never shows an object whose files are empty (see fsutil.write_new).
MOUNT_OPTIONS = "user_subvol_rm_allowed,flushoncommit"
INTENT = "intent.json"


class PoolKind(enum.StrEnum):
    LOOP = "loop"
    BLOCK = "block"
    DIR = "dir"


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    kind: PoolKind
    source: str
    mountpoint: str
    fsid: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "source": self.source,
                "mountpoint": self.mountpoint, "fsid": self.fsid}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> PoolConfig:
        return cls(PoolKind(data["kind"]), data["source"], data["mountpoint"], data["fsid"])


class Pool:
    """Paths inside a mounted pool, and its temporary-object bookkeeping."""

    def __init__(self, state_dir: Path, config: PoolConfig) -> None:
        self.state_dir = state_dir
        self.config = config
        self.root = Path(config.mountpoint)
        self.lxcpath = self.root / "containers"
        self.images = self.root / "images"
        self.meta = self.root / ".lxcow"
        self.locks = self.meta / "locks"
        self.tmp = self.meta / "tmp"
        self.aliases = self.meta / "aliases"
        self.lock_timeout = locks.DEFAULT_TIMEOUT

    # -- locks ------------------------------------------------------------------------------

    def lock(self, kind: str, name: str, *,
             shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return locks.hold(self.locks / f"{kind}.{name}", f"{kind} {name}",
                          shared=shared, timeout=self.lock_timeout)

    def drop_lock(self, kind: str, name: str) -> None:
        locks.remove(self.locks / f"{kind}.{name}")

    # -- temporary objects ------------------------------------------------------------------

    @contextlib.contextmanager
    def scratch(self, label: str) -> Iterator[Path]:
        """A hidden, locked, empty directory on the pool for building an object.

        The caller renames the directory into place when the object is whole.  If the block
        raises, or the caller never renamed it, the directory and every subvolume in it are
        removed.
        """
        with contextlib.ExitStack() as cleanup:
            with _signals_held():
                path = self._new_temporary(label, cleanup)
                cleanup.callback(_remove_if_there, path)
            yield path

    @contextlib.contextmanager
    def discard(self, path: Path, label: str) -> Iterator[Path]:
        """Move an existing object out of sight into the temporary area, then remove it.

        Once moved it is gone from every listing; if the command dies before the removal
        finishes, the next command removes the rest.
        """
        with contextlib.ExitStack() as cleanup:
            with _signals_held():
                target = self._new_temporary(label, cleanup)
                try:
                    os.rename(path, target / "object")
                except OSError as err:
                    os.rmdir(target)
                    raise from_oserror(err, f"remove {path}") from None
            yield target
            btrfs.remove_tree(target)

    def _new_temporary(self, label: str, cleanup: contextlib.ExitStack) -> Path:
        """A new directory in the temporary area, flock-ed until ``cleanup`` closes."""
        import tempfile

        with locks.hold(self.locks / "tmp", "temporary area"):
            path = Path(tempfile.mkdtemp(prefix=f"{label}.", dir=self.tmp))
            fd = locks.try_hold(path)
        assert fd is not None
        cleanup.callback(os.close, fd)
        return path

    def clean_leftovers(self) -> list[str]:
        """Remove temporary objects left by killed commands; return their names."""
        try:
            entries = os.listdir(self.tmp)
        except FileNotFoundError:
            return []
        if not entries:
            return []
        removed = []
        with locks.hold(self.locks / "tmp", "temporary area"):
            for entry in entries:
                path = self.tmp / entry
                fd = locks.try_hold(path)
                if fd is None:
                    continue
                try:
                    self._roll_forward(path)
                    log.info("removing leftover %s of an interrupted command", entry)
                    btrfs.remove_tree(path)
                    removed.append(entry)
                finally:
                    os.close(fd)
        return removed

    def _roll_forward(self, scratch: Path) -> None:
        """Finish the last step of a killed command, as recorded in its ``intent.json``.

        The intent says: once the command got past its atomic step (``done_if_exists``
        exists, or the subvolume now at ``done_if_subvolume`` is the one with ``uuid``),
        write each file of ``writes``.  Before that point there is nothing to finish.
        """
        try:
            intent = read_json(scratch / INTENT)
        except (FileNotFoundError, ValueError):
            return
        if "done_if_exists" in intent:
            done = os.path.exists(intent["done_if_exists"])
        else:
            path = Path(intent["done_if_subvolume"])
            done = path.exists() and btrfs.info(path).uuid == intent["uuid"]
        if done:
            for path, text in intent["writes"]:
                log.info("finishing an interrupted command: writing %s", path)
                write_atomic(Path(path), text)

    def record_intent(self, scratch: Path, writes: list[tuple[Path, str]], *,
                      done_if_exists: Path | None = None,
                      done_if_subvolume: tuple[Path, str] | None = None) -> None:
        intent: dict[str, object] = {"writes": [[os.fspath(p), t] for p, t in writes]}
        if done_if_exists is not None:
            intent["done_if_exists"] = os.fspath(done_if_exists)
        elif done_if_subvolume is not None:
            intent["done_if_subvolume"] = os.fspath(done_if_subvolume[0])
            intent["uuid"] = done_if_subvolume[1]
        write_new_json(scratch / INTENT, intent)


def _remove_if_there(path: Path) -> None:
    if os.path.lexists(path):
        btrfs.remove_tree(path)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a temporary object and its cleanup are set up.

    A signal that arrives meanwhile is delivered when the block ends, when the cleanup is in
    place to run.
    """
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# -- setting up and opening ---------------------------------------------------------------


def _config_path(state_dir: Path) -> Path:
    return state_dir / "pool.json"


def _mountpoint(state_dir: Path) -> Path:
    return state_dir / "pool"


def _loop_file(state_dir: Path) -> Path:
    return state_dir / "disks" / "default.img"


def read_config(state_dir: Path) -> PoolConfig | None:
    try:
        return PoolConfig.from_json(read_json(_config_path(state_dir)))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        raise PreconditionFailed(f"{_config_path(state_dir)} is damaged: {err}") from None


def open_pool(state_dir: Path, *, clean: bool = True) -> Pool:
    """Open the pool of ``state_dir``, mounting it again after a reboot."""
    config = read_config(state_dir)
    if config is None:
        raise PreconditionFailed(
            f"no pool is set up in {state_dir}", hint="run 'lxcow init' first"
        )
    _ensure_mounted(config)
    pool = Pool(state_dir, config)
    if clean:
        pool.clean_leftovers()
    return pool


def _ensure_mounted(config: PoolConfig) -> None:
    mnt = Path(config.mountpoint)
    if config.kind is PoolKind.DIR:
        if not mnt.is_dir():
            raise NotFound(f"pool directory {mnt} is missing")
    elif not os.path.ismount(mnt):
        if config.kind is PoolKind.LOOP and not os.path.exists(config.source):
            raise NotFound(f"pool loop file {config.source} is missing")
        log.info("mounting pool %s on %s", config.source, mnt)
        _mount(Path(config.source), mnt, loop=config.kind is PoolKind.LOOP)
    actual = btrfs.fsid(mnt)
    if actual != config.fsid:
        raise PreconditionFailed(
            f"{mnt} holds filesystem {actual}, not the pool's {config.fsid}",
            hint="unmount whatever is mounted there",
        )


def _mount(source: Path, mnt: Path, *, loop: bool) -> None:
    mnt.mkdir(parents=True, exist_ok=True)
    options = f"loop,{MOUNT_OPTIONS}" if loop else MOUNT_OPTIONS
    run(["mount", "-t", "btrfs", "-o", options, source, mnt])


def default_size(state_dir: Path) -> int:
    """20 % of the free space where the loop file goes, clamped to 5-30 GiB."""
    probe = state_dir
    while not probe.exists():
        probe = probe.parent
    st = os.statvfs(probe)
    return max(MIN_DEFAULT_SIZE, min(MAX_DEFAULT_SIZE, st.f_bavail * st.f_frsize // 5))


def init(state_dir: Path, *, size: int | None = None, source: str | None = None,
         force: bool = False) -> Pool:
    """Set up the pool (idempotent: a second call only checks and mounts it)."""
    if size is not None and size < MIN_SIZE:
        raise UsageError(f"pool size {size} is too small", hint="use at least 256MiB")
    state_dir.mkdir(parents=True, exist_ok=True)
    with locks.hold(state_dir / ".lock", "pool"):
        existing = read_config(state_dir)
        if existing is not None:
            wanted = _wanted_source(state_dir, source)
            if wanted is not None and wanted != existing.source:
                raise AlreadyExists(
                    f"a pool is already set up in {state_dir} on {existing.source}",
                    hint="use another --state-dir",
                )
            pool = open_pool(state_dir)
        else:
            config = _create(state_dir, size=size, source=source, force=force)
            pool = Pool(state_dir, config)
        for d in (pool.lxcpath, pool.images, pool.meta, pool.locks, pool.tmp, pool.aliases):
            d.mkdir(mode=0o700 if d == pool.meta else 0o755, exist_ok=True)
        if existing is None:
            # pool.json last: until it exists, init has not happened.
            write_json(_config_path(state_dir), pool.config.to_json())
        return pool


def _wanted_source(state_dir: Path, source: str | None) -> str | None:
    if source is None:
        return None
    return os.path.realpath(source)


def _create(state_dir: Path, *, size: int | None, source: str | None,
            force: bool) -> PoolConfig:
    if source is None:
        return _create_loop(state_dir, size or default_size(state_dir))
    path = Path(os.path.realpath(source))
    if not path.exists():
        raise NotFound(f"pool source {source} does not exist")
    if path.is_block_device():
        return _create_block(state_dir, path, force=force)
    if path.is_dir():
        if not btrfs.is_btrfs(path):
            raise PreconditionFailed(
                f"{path} is not on a Btrfs filesystem",
                hint="give a directory on Btrfs, a block device, or no --source for a loop file",
            )
        return PoolConfig(PoolKind.DIR, os.fspath(path), os.fspath(path), btrfs.fsid(path))
    raise UsageError(f"pool source {source} is neither a block device nor a directory")


def _create_loop(state_dir: Path, size: int) -> PoolConfig:
    img = _loop_file(state_dir)
    mnt = _mountpoint(state_dir)
    img.parent.mkdir(parents=True, exist_ok=True)
    if not img.exists():
        # Format under a temporary name: a killed init leaves no half-made disk behind.
        tmp = img.with_name(f".{img.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.truncate(size)
            run(["mkfs.btrfs", "-q", "-f", "-L", "lxcow", tmp])
            os.rename(tmp, img)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    if not os.path.ismount(mnt):
        _mount(img, mnt, loop=True)
    return PoolConfig(PoolKind.LOOP, os.fspath(img), os.fspath(mnt), btrfs.fsid(mnt))


def _create_block(state_dir: Path, device: Path, *, force: bool) -> PoolConfig:
    mnt = _mountpoint(state_dir)
    probe = run(["blkid", "-p", "-o", "value", "-s", "TYPE", device], check=False)
    fstype = probe.stdout.strip()
    if probe.returncode == 0 and fstype and not force:
        raise PreconditionFailed(
            f"{device} already holds a {fstype} filesystem",
            hint="pass --force to format it, destroying its data",
        )
    if os.path.ismount(mnt):
        raise AlreadyExists(f"something is already mounted on {mnt}")
    run(["mkfs.btrfs", "-q", "-f", "-L", "lxcow", device])
    _mount(device, mnt, loop=False)
    return PoolConfig(PoolKind.BLOCK, os.fspath(device), os.fspath(mnt), btrfs.fsid(mnt))


def unmount(state_dir: Path) -> None:
    """Unmount a loop or block pool (its loop device is detached with it)."""
    config = read_config(state_dir)
    if config is None:
        raise PreconditionFailed(f"no pool is set up in {state_dir}")
    if config.kind is PoolKind.DIR or not os.path.ismount(config.mountpoint):
        return
    run(["umount", config.mountpoint])


def usage(pool: Pool) -> tuple[int, int, int]:
    """Size, used and free bytes of the pool's filesystem."""
    try:
        st = os.statvfs(pool.root)
    except OSError as err:
        raise from_oserror(err, f"pool {pool.root}") from None
    size = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return size, size - st.f_bfree * st.f_frsize, free
