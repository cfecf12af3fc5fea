"""The typed Python API: one object per state directory, one method per command.

Methods return dataclasses and raise :mod:`lxcow.errors` exceptions; nothing here prints or
exits.  Example::

    from lxcow import Lxcow

    lx = Lxcow("/var/lib/lxcow")
    lx.init()
    lx.image_build_busybox(alias="busybox")
    lx.launch("busybox", ["web1", "web2"])
"""

from __future__ import annotations

import builtins
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lxcow import containers, locks, names
from lxcow import pool as pools
from lxcow.containers import Container

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it

if TYPE_CHECKING:
    from lxcow.backups import BackupInfo
    from lxcow.images import Image
    from lxcow.lxcconfig import Network
    from lxcow.snapshots import Snapshot

DEFAULT_STATE_DIR = "/var/lib/lxcow"


@dataclasses.dataclass(frozen=True)
class PoolInfo:
    state_dir: str
    kind: str
    source: str
    mountpoint: str
    lxcpath: str
    fsid: str
    size: int
    used: int
    free: int
    containers: int
    images: int
    kernel: str
    btrfs_progs: str
    lxc: str


class Lxcow:
    def __init__(self, state_dir: str | os.PathLike[str] | None = None, *,
                 lock_timeout: float = locks.DEFAULT_TIMEOUT) -> None:
        if state_dir is None:
            state_dir = os.environ.get("LXCOW_STATE_DIR") or DEFAULT_STATE_DIR
        self.state_dir = Path(os.path.abspath(state_dir))
        self.lock_timeout = lock_timeout
        self._pool: pools.Pool | None = None

    @property
    def pool(self) -> pools.Pool:
        """The open pool, mounted again if the host rebooted; leftovers are cleaned once."""
        if self._pool is None:
            self._pool = pools.open_pool(self.state_dir)
            self._pool.lock_timeout = self.lock_timeout
        return self._pool

    # -- pool -------------------------------------------------------------------------------

    def init(self, *, size: int | None = None, source: str | None = None,
             force: bool = False) -> PoolInfo:
        self._pool = pools.init(self.state_dir, size=size, source=source, force=force)
        self._pool.lock_timeout = self.lock_timeout
        return self.pool_info()

    def pool_info(self) -> PoolInfo:
        from lxcow import liblxc
        from lxcow.run import run

        p = self.pool
        size, used, free = pools.usage(p)
        progs = run(["btrfs", "--version"]).stdout.split()
        return PoolInfo(
            state_dir=os.fspath(self.state_dir),
            kind=p.config.kind.value,
            source=p.config.source,
            mountpoint=p.config.mountpoint,
            lxcpath=os.fspath(p.lxcpath),
            fsid=p.config.fsid,
            size=size,
            used=used,
            free=free,
            containers=sum(1 for e in os.listdir(p.lxcpath) if not e.startswith(".")),
            images=sum(1 for e in os.listdir(p.images) if names.is_fingerprint(e)),
            kernel=os.uname().release,
            btrfs_progs=progs[-1] if progs else "",
            lxc=liblxc.version(),
        )

    def unmount(self) -> None:
        """Unmount a loop or block pool; refused while containers run on it."""
        from lxcow.errors import PreconditionFailed

        running = [c.name for c in self.list() if c.state != "STOPPED"]
        if running:
            raise PreconditionFailed(f"containers are running on the pool: {', '.join(running)}",
                                     hint="stop them first")
        pools.unmount(self.state_dir)
        self._pool = None

    # -- images -----------------------------------------------------------------------------

    def image_build_busybox(self, alias: str | None = None) -> Image:
        from lxcow import images

        return images.build_busybox(self.pool, alias)

    def image_import(self, rootfs: str | os.PathLike[str],
                     meta: str | os.PathLike[str] | None = None, alias: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Image:
        from lxcow import images

        return images.import_tarball(self.pool, Path(rootfs), Path(meta) if meta else None,
                                     alias, progress)

    def images(self) -> list[Image]:
        from lxcow import images

        return images.list_images(self.pool)

    def image(self, ref: str) -> Image:
        from lxcow import images

        return images.get(self.pool, ref)

    def image_delete(self, ref: str) -> Image:
        from lxcow import images

        return images.delete(self.pool, ref)

    def image_alias_set(self, alias: str, ref: str) -> Image:
        from lxcow import images

        return images.get(self.pool, images.set_alias(self.pool, alias, ref))

    def image_alias_delete(self, alias: str) -> None:
        from lxcow import images

        images.remove_alias(self.pool, alias)

    # -- containers -------------------------------------------------------------------------

    def create(self, image: str, new: Sequence[str],
               network: Network | None = None) -> list[Container]:
        return containers.create(self.pool, image, new, network)

    def launch(self, image: str, new: Sequence[str],
               network: Network | None = None) -> list[Container]:
        made = containers.create(self.pool, image, new, network)
        return [containers.start(self.pool, c.name) for c in made]

    def start(self, name: str) -> Container:
        return containers.start(self.pool, name)

    def autostart(self) -> builtins.list[Container]:
        """Start every stopped container marked boot.autostart (run it once at boot)."""
        return containers.autostart(self.pool)

    def stop(self, name: str, *, force: bool = False,
             timeout: int = containers.DEFAULT_STOP_TIMEOUT) -> Container:
        return containers.stop(self.pool, name, force=force, timeout=timeout)

    def restart(self, name: str, *, force: bool = False,
                timeout: int = containers.DEFAULT_STOP_TIMEOUT) -> Container:
        return containers.restart(self.pool, name, force=force, timeout=timeout)

    def freeze(self, name: str) -> Container:
        return containers.freeze(self.pool, name)

    def unfreeze(self, name: str) -> Container:
        return containers.unfreeze(self.pool, name)

    def delete(self, name: str, *, force: bool = False) -> None:
        containers.delete(self.pool, name, force=force)

    def rename(self, name: str, new: str) -> Container:
        return containers.rename(self.pool, name, new)

    def copy(self, source: str, new: str) -> Container:
        """Clone a container, or a snapshot given as ``NAME/SNAP``."""
        return containers.copy(self.pool, source, new)

    def info(self, name: str) -> Container:
        return containers.info(self.pool, name)

    def list(self) -> list[Container]:
        return containers.list_containers(self.pool)

    def exec(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        return containers.execute(self.pool, name, argv, env or {})

    def config_get(self, name: str, key: str) -> str | None:
        return containers.config_get(self.pool, name, key)

    def config_set(self, name: str, key: str, value: str) -> None:
        containers.config_set(self.pool, name, key, value)

    def config_unset(self, name: str, key: str) -> None:
        containers.config_set(self.pool, name, key, None)

    # -- backups ----------------------------------------------------------------------------

    def export(self, name: str, path: str | os.PathLike[str], *, instance_only: bool = False,
               base: str | os.PathLike[str] | None = None, compression: str = "zstd",
               portable: bool = False,
               progress: Callable[[int, int, str], None] | None = None) -> BackupInfo | None:
        """Write a backup of a container; a portable one returns None."""
        from lxcow import backups
        from lxcow import portable as portable_backup

        if portable:
            if base is not None or instance_only:
                from lxcow.errors import UsageError

                raise UsageError("--portable takes neither --base nor --instance-only")
            portable_backup.export(self.pool, name, Path(path), compression=compression)
            return None
        return backups.export(self.pool, name, Path(path), instance_only=instance_only,
                              base=Path(base) if base else None, compression=compression,
                              progress=progress)

    def import_backups(self, paths: Sequence[str | os.PathLike[str]], *,
                       name: str | None = None,
                       progress: Callable[[int, int, str], None] | None = None) -> Container:
        """Import a full backup, an incremental one, a chain of them, or a portable one."""
        from lxcow import backups

        made = backups.import_files(self.pool, [Path(p) for p in paths], name, progress)
        return self.info(made)

    def backup_verify(self, paths: Sequence[str | os.PathLike[str]],
                      progress: Callable[[int, int, str], None] | None = None
                      ) -> builtins.list[BackupInfo]:
        from lxcow import backups

        return backups.verify([Path(p) for p in paths], progress)

    def backup_info(self, path: str | os.PathLike[str]) -> BackupInfo:
        from lxcow import backups

        return backups.info(os.fspath(path))

    # -- snapshots --------------------------------------------------------------------------

    def snapshot_create(self, name: str, snap: str | None = None,
                        comment: str | None = None) -> Snapshot:
        from lxcow import snapshots

        return snapshots.create(self.pool, name, snap, comment)

    def snapshots(self, name: str) -> builtins.list[Snapshot]:
        from lxcow import snapshots

        return snapshots.list_snapshots(self.pool, name)

    def snapshot(self, name: str, snap: str) -> Snapshot:
        from lxcow import snapshots

        return snapshots.show(self.pool, name, snap)

    def snapshot_delete(self, name: str, snap: str) -> None:
        from lxcow import snapshots

        snapshots.delete(self.pool, name, snap)

    def snapshot_restore(self, name: str, snap: str, *, force: bool = False,
                         timeout: int = containers.DEFAULT_STOP_TIMEOUT) -> Snapshot:
        from lxcow import snapshots

        return snapshots.restore(self.pool, name, snap, force=force, timeout=timeout)
