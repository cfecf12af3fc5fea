"""Snapshots: read-only, point-in-time copies of a container, in LXC's own layout.

``containers/<name>/snaps/<snap>/`` holds ``rootfs`` (a read-only subvolume, with every
nested subvolume of the container, read-only too), ``config`` (the container's config, its
rootfs path naming the snapshot's rootfs, as ``lxc-snapshot`` writes it), ``ts`` (local time,
LXC's format), an optional ``comment`` and ``lxcow.json`` (the nested subvolumes' own
read-only flags, to give them back on restore and copy).  ``lxc-snapshot -L`` lists these
snapshots, and snapshots made by ``lxc-snapshot`` are listed, restored and deleted here.
Paths always come from this layout, never from a snapshot's config file.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

from lxcow import btrfs, containers, liblxc, lxcconfig, names
from lxcow.errors import AlreadyExists, NotFound, UsageError
from lxcow.fsutil import read_json, rename_noreplace, write_atomic, write_new, write_new_json
from lxcow.liblxc import State
from lxcow.log import get as get_logger
from lxcow.pool import Pool

log = get_logger(__name__)

META = "lxcow.json"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    container: str
    name: str
    created: str
    comment: str
    size: int | None
    readonly: bool
    nested: tuple[str, ...]
    path: str


def _snaps(pool: Pool, name: str) -> Path:
    return pool.lxcpath / name / "snaps"


def _require(pool: Pool, name: str, snap: str) -> Path:
    names.check_name(snap, "snapshot")
    d = _snaps(pool, name) / snap
    if not (d / "rootfs").is_dir():
        raise NotFound(f"snapshot {name}/{snap} not found",
                       hint=f"see 'lxcow snapshot list {name}'")
    return d


def nested_flags(d: Path) -> dict[str, bool]:
    try:
        return {k: bool(v) for k, v in read_json(d / META).get("nested", {}).items()}
    except (FileNotFoundError, ValueError, AttributeError):
        return {}


def _exclusive_size(pool: Pool, subvol_id: int) -> int | None:
    """Exclusive bytes from sysfs when the user has quotas on; None otherwise."""
    path = Path(f"/sys/fs/btrfs/{pool.config.fsid}/qgroups/0_{subvol_id}/exclusive")
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _describe(pool: Pool, name: str, snap: str, d: Path,
              info: btrfs.SubvolumeInfo | None = None) -> Snapshot:
    info = info or btrfs.info(d / "rootfs")
    try:
        comment = (d / "comment").read_text().strip()
    except OSError:
        comment = ""
    return Snapshot(
        container=name,
        name=snap,
        created=_recorded_created(d) or info.created.replace(microsecond=0).isoformat(),
        comment=comment,
        size=_exclusive_size(pool, info.id),
        readonly=info.readonly,
        nested=tuple(sorted(nested_flags(d))),
        path=os.fspath(d),
    )


def list_snapshots(pool: Pool, name: str) -> list[Snapshot]:
    containers.require(pool, name)
    try:
        entries = os.listdir(_snaps(pool, name))
    except FileNotFoundError:
        return []
    found = []
    for snap in entries:
        d = _snaps(pool, name) / snap
        if snap.startswith(".") or not (d / "rootfs").is_dir():
            continue
        # Subvolume IDs grow with creation: the order in which the snapshots were taken.
        info = btrfs.info(d / "rootfs")
        found.append((info.id, _describe(pool, name, snap, d, info)))
    return [s for _, s in sorted(found, key=lambda pair: pair[0])]


def show(pool: Pool, name: str, snap: str) -> Snapshot:
    containers.require(pool, name)
    return _describe(pool, name, snap, _require(pool, name, snap))


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _recorded_created(d: Path) -> str | None:
    try:
        created = read_json(d / META).get("created")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return created if isinstance(created, str) else None


def _next_name(pool: Pool, name: str) -> str:
    i = 0
    while os.path.lexists(_snaps(pool, name) / f"snap{i}"):
        i += 1
    return f"snap{i}"


def create(pool: Pool, name: str, snap: str | None = None, comment: str | None = None) -> Snapshot:
    """Snapshot a container, consistently if it runs: freeze, sync, snapshot all, thaw."""
    d = containers.require(pool, name)
    if snap is not None:
        names.check_name(snap, "snapshot")
    with containers.lock(pool, name):
        snap = snap or _next_name(pool, name)
        final = _snaps(pool, name) / snap
        if os.path.lexists(final):
            raise AlreadyExists(f"snapshot {name}/{snap} already exists")
        with pool.scratch(f"snapshot-{name}-{snap}") as scratch:
            with containers.frozen(pool, name):
                nested = btrfs.snapshot(d / "rootfs", scratch / "rootfs", readonly=True,
                                        nested_readonly=True)
                config = (d / "config").read_text()
            now = datetime.datetime.now()
            write_new(scratch / "config", snapshot_config(config, final))
            write_new(scratch / "ts", now.strftime("%Y:%m:%d %H:%M:%S") + "\n")
            if comment:
                write_new(scratch / "comment", comment.rstrip("\n") + "\n")
            write_new_json(scratch / META, {"nested": dict(nested), "created": _utc_now()})
            _snaps(pool, name).mkdir(exist_ok=True)
            rename_noreplace(scratch, final, f"snapshot {name}/{snap}")
    log.info("snapshot %s/%s created", name, snap)
    return show(pool, name, snap)


def snapshot_config(config: str, snap_dir: Path) -> str:
    out = []
    for line in config.splitlines():
        if line.split("=", 1)[0].strip() == "lxc.rootfs.path":
            line = f"lxc.rootfs.path = btrfs:{snap_dir / 'rootfs'}"
        out.append(line)
    return "\n".join(out) + "\n"


def delete(pool: Pool, name: str, snap: str) -> None:
    containers.require(pool, name)
    with containers.lock(pool, name):
        d = _require(pool, name, snap)
        with pool.discard(d, f"snapshot-delete-{name}-{snap}"):
            pass
    log.info("snapshot %s/%s deleted", name, snap)


def clone_rootfs(pool: Pool, name: str, snap: str, dest: Path) -> str:
    """A writable copy of a snapshot's rootfs at ``dest``; returns the snapshot's config.

    Nested subvolumes get back the read-only flags they had in the container.
    """
    d = _require(pool, name, snap)
    btrfs.snapshot(d / "rootfs", dest, readonly=False, nested_readonly=nested_flags(d))
    return (d / "config").read_text()


def restore(pool: Pool, name: str, snap: str, *, force: bool = False,
            timeout: int = containers.DEFAULT_STOP_TIMEOUT) -> Snapshot:
    """Make the container what it was at the snapshot, never leaving it without a rootfs.

    The snapshot is cloned under a temporary name and swapped with the live rootfs in one
    atomic rename (RENAME_EXCHANGE); the config is restored after it (a kill in between is
    finished by the next command); the old rootfs is removed last.  Newer snapshots stay.  A
    running container is stopped first and started again after.
    """
    d = containers.require(pool, name)
    with containers.lock(pool, name):
        _require(pool, name, snap)
        state = containers.current_state(pool, name)
        was_running = state is not State.STOPPED
        with pool.scratch(f"restore-{name}-{snap}") as scratch:
            config = clone_rootfs(pool, name, snap, scratch / "rootfs")
            config = lxcconfig.retarget(config, name, d, new_macs=False)
            # Done once the live rootfs is this very clone; a rootfs restored from the same
            # snapshot before would also descend from it, so its parent would not tell.
            pool.record_intent(scratch, [(d / "config", config)],
                               done_if_subvolume=(d / "rootfs",
                                                  btrfs.info(scratch / "rootfs").uuid))
            if was_running:
                containers.stop_locked(pool, name, force=force, timeout=timeout)
            from lxcow.fsutil import exchange

            exchange(scratch / "rootfs", d / "rootfs")
            write_atomic(d / "config", config)
        if was_running:
            liblxc.start(name, pool.lxcpath)
    log.info("%s restored to snapshot %s", name, snap)
    return show(pool, name, snap)


def snapshot_configs(pool: Pool, name: str, new_dir: Path) -> list[tuple[Path, str]]:
    """The snapshots' configs rewritten for a container that moves to ``new_dir``."""
    result = []
    try:
        entries = os.listdir(_snaps(pool, name))
    except FileNotFoundError:
        return []
    for snap in entries:
        cfg = _snaps(pool, name) / snap / "config"
        if snap.startswith(".") or not cfg.is_file():
            continue
        text = lxcconfig.retarget(cfg.read_text(), new_dir.name, new_dir, new_macs=False)
        result.append((new_dir / "snaps" / snap / "config",
                       snapshot_config(text, new_dir / "snaps" / snap)))
    return result


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME/SNAP``."""
    name, sep, snap = ref.partition("/")
    if sep and not snap:
        raise UsageError(f"invalid snapshot reference {ref!r}", hint="use NAME/SNAPSHOT")
    return name, (snap if sep else None)
