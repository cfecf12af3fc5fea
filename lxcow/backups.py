"""Backups: export a container with its snapshots as Btrfs send streams, and import it.

A full backup holds one stream per subvolume (rootfs and nested) of every snapshot and of the
current state, each sent against the same subvolume of the previous snapshot.  An incremental
backup is sent against the newest snapshot of an earlier backup, which must still be on the
host; on import it is applied to the container that was imported from that earlier backup,
found by the received UUID of that snapshot.  See docs/backup-format.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from lxcow import backupformat, btrfs, containers, lxcconfig, names, snapshots
from lxcow.errors import (
    AlreadyExists,
    BadData,
    CommandFailed,
    NoSpace,
    NotFound,
    PreconditionFailed,
    UsageError,
)
from lxcow.fsutil import (
    exchange,
    read_json,
    rename_noreplace,
    write_atomic,
    write_new,
    write_new_json,
)
from lxcow.log import get as get_logger
from lxcow.pool import Pool

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import IO, Any

log = get_logger(__name__)

Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class BackupInfo:
    file: str
    id: str
    kind: str
    container: str
    created: str
    compression: str
    base: str | None
    base_snapshot: str | None
    snapshots: tuple[str, ...]
    streams: int
    bytes: int | None
    complete: bool


def _info(path: str, header: dict[str, Any], trailer: dict[str, Any] | None) -> BackupInfo:
    base = header.get("base") or {}
    return BackupInfo(
        file=path,
        id=header["id"],
        kind="incremental" if base else "full",
        container=header["container"]["name"],
        created=header.get("created", ""),
        compression=header["compression"],
        base=base.get("backup_id"),
        base_snapshot=base.get("snapshot"),
        snapshots=tuple(s["name"] for s in header["snapshots"]),
        streams=len(header["streams"]),
        bytes=sum(s["bytes"] for s in trailer["streams"]) if trailer else None,
        complete=trailer is not None,
    )


def info(path: str) -> BackupInfo:
    header, trailer = backupformat.summary(path)
    return _info(path, header, trailer)


# -- export ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Source:
    snapshot: str | None   # None: the current state
    root: Path             # a read-only subvolume
    nested: dict[str, bool]


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def export(pool: Pool, name: str, path: Path, *, instance_only: bool = False,
           base: Path | None = None, compression: str = "zstd",
           progress: Progress | None = None) -> BackupInfo:
    d = containers.require(pool, name)
    if compression not in backupformat.COMPRESSIONS:
        raise UsageError(f"unknown compression {compression}", hint="use zstd or none")
    if os.path.lexists(path):
        raise AlreadyExists(f"{path} already exists", hint="give a new file name")
    if not path.parent.is_dir():
        raise NotFound(f"directory {path.parent} not found")
    base_header = _base_header(base) if base else None

    with containers.lock(pool, name), pool.scratch(f"export-{name}") as scratch:
        sources, base_ref, base_root = _sources(pool, name, d, scratch, instance_only,
                                                base_header)
        streams = _plan(sources, base_root)
        header = _header(pool, name, d, sources, streams, compression, base_header, base_ref)
        tmp = _partial(path)
        try:
            with open(tmp, "xb") as f:
                writer = backupformat.Writer(f, compression)
                writer.header(header)
                done = 0
                for s, (sub, parent) in zip(header["streams"], streams, strict=True):
                    note = f"stream {s['index'] + 1}/{len(streams)}"
                    with btrfs.send(sub, parent) as stream:
                        done += writer.stream(s["index"], stream, progress, done, note).bytes
                writer.trailer(header["id"])
                f.flush()
                os.fsync(f.fileno())
            rename_noreplace(tmp, path, f"{path}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    log.info("exported %s to %s", name, path)
    return info(os.fspath(path))


def _base_header(base: Path) -> dict[str, Any]:
    header, trailer = backupformat.summary(os.fspath(base))
    if trailer is None:
        raise BadData(f"{base} is incomplete", hint="give a complete earlier backup")
    if not header.get("newest_snapshot"):
        raise PreconditionFailed(
            f"{base} holds no snapshot to build on",
            hint="take a snapshot before a backup that later ones build on")
    return header


def _sources(pool: Pool, name: str, d: Path, scratch: Path, instance_only: bool,
             base_header: dict[str, Any] | None
             ) -> tuple[list[_Source], dict[str, str] | None, Path | None]:
    """The read-only subvolume trees to send, oldest first, and the base to send against."""
    all_snaps = snapshots.list_snapshots(pool, name)
    base_ref = None
    base_root = None
    chosen = [] if instance_only else all_snaps
    if base_header is not None:
        newest = base_header["newest_snapshot"]
        for i, snap in enumerate(all_snaps):
            root = Path(snap.path) / "rootfs"
            if btrfs.info(root).uuid == newest["uuid"]:
                base_ref = {"backup_id": base_header["id"], "snapshot": snap.name,
                            "uuid": newest["uuid"]}
                base_root = root
                chosen = [] if instance_only else all_snaps[i + 1:]
                break
        else:
            raise NotFound(
                f"snapshot {newest['name']} of the earlier backup is no longer on this host",
                hint="make a full backup instead")

    sources = []
    for snap in chosen:
        root = Path(snap.path) / "rootfs"
        recorded = snapshots.nested_flags(Path(snap.path))
        flags = {rel: recorded.get(rel, False) for rel, _ in btrfs.nested(root)}
        if not btrfs.is_readonly(root):
            # Made by lxc-snapshot, which leaves it writable: send a read-only copy of it.
            copy = scratch / f"ro-{snap.name}"
            btrfs.snapshot(root, copy, readonly=True, nested_readonly=True)
            root = copy
        sources.append(_Source(snap.name, root, flags))
    with containers.frozen(pool, name):
        children = btrfs.snapshot(d / "rootfs", scratch / "current", readonly=True,
                                  nested_readonly=True)
    sources.append(_Source(None, scratch / "current", dict(children)))
    return sources, base_ref, base_root


def _plan(sources: list[_Source], base_root: Path | None) -> list[tuple[Path, Path | None]]:
    """(subvolume, parent to send against) for every stream, in order."""
    plan = []
    previous = base_root
    for src in sources:
        for rel in ["", *sorted(src.nested, key=lambda r: (r.count("/"), r))]:
            sub = src.root / rel if rel else src.root
            parent = None
            if previous is not None:
                candidate = previous / rel if rel else previous
                if btrfs.is_subvolume(candidate):
                    parent = candidate
            plan.append((sub, parent))
        previous = src.root
    return plan


def _header(pool: Pool, name: str, d: Path, sources: list[_Source],
            plan: list[tuple[Path, Path | None]], compression: str,
            base_header: dict[str, Any] | None, base_ref: dict[str, str] | None
            ) -> dict[str, Any]:
    try:
        meta = read_json(d / containers.META)
    except (FileNotFoundError, ValueError):
        meta = {}
    streams = []
    index = 0
    for src in sources:
        for rel in ["", *sorted(src.nested, key=lambda r: (r.count("/"), r))]:
            sub, parent = plan[index]
            streams.append({
                "index": index,
                "snapshot": src.snapshot,
                "path": rel,
                "name": sub.name,
                "readonly": src.nested.get(rel, src.snapshot is not None),
                "uuid": btrfs.info(sub).uuid,
                "parent_uuid": btrfs.info(parent).uuid if parent else None,
            })
            index += 1
    snaps = []
    for src in sources:
        if src.snapshot is None:
            continue
        snap_dir = d / "snaps" / src.snapshot
        shown = snapshots.show(pool, name, src.snapshot)
        snaps.append({
            "name": src.snapshot,
            "created": shown.created,
            "comment": shown.comment,
            "nested": src.nested,
            "config": (snap_dir / "config").read_text(),
            "uuid": btrfs.info(src.root).uuid,
        })
    newest = ({"name": snaps[-1]["name"], "uuid": snaps[-1]["uuid"]} if snaps
              else (base_header or {}).get("newest_snapshot"))
    return {
        "format": backupformat.FORMAT,
        "version": backupformat.VERSION,
        "id": str(uuid.uuid4()),
        "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "compression": compression,
        "container": {
            "name": name,
            "config": (d / "config").read_text(),
            "image": meta.get("image", ""),
            "image_alias": meta.get("image_alias", ""),
            "created": meta.get("created", ""),
        },
        "base": base_ref,
        "newest_snapshot": newest,
        "snapshots": snaps,
        "streams": streams,
    }


# -- import ---------------------------------------------------------------------------------


def import_files(pool: Pool, paths: list[Path], new_name: str | None = None,
                 progress: Progress | None = None) -> str:
    """Import a full backup, an incremental one, or a chain of them given in order."""
    from lxcow import portable

    if not paths:
        raise UsageError("no backup file given")
    if new_name is not None:
        names.check_name(new_name)
    kinds = [_kind(p) for p in paths]
    if "portable" in kinds:
        if len(paths) != 1:
            raise UsageError("a portable tarball is imported on its own")
        return portable.import_tarball(pool, paths[0], new_name, progress)
    headers = []
    for p in paths:
        header, trailer = backupformat.summary(os.fspath(p))
        if trailer is None:
            raise BadData(f"{p} is incomplete: it has no trailer",
                          hint="the export that wrote it did not finish")
        headers.append(header)
    name = new_name or headers[0]["container"]["name"]
    made = False
    try:
        for p, header in zip(paths, headers, strict=True):
            if header.get("base"):
                _apply_incremental(pool, p, name, progress)
            else:
                _import_full(pool, p, name, header, progress)
                made = True
    except BaseException:
        # A chain that starts with a full backup is all or nothing.
        if made:
            with contextlib.suppress(Exception):
                containers.delete(pool, name, force=True)
        raise
    return str(name)


def _kind(path: Path) -> str:
    if not path.is_file():
        raise NotFound(f"backup file {path} not found")
    from lxcow.compression import first_member

    try:
        first = first_member(os.fspath(path))
    except BadData:
        raise BadData(f"{path} is not an lxcow backup") from None
    if first == backupformat.HEADER:
        return "backup"
    if first == "lxcow-portable.json":
        return "portable"
    raise BadData(f"{path} is not an lxcow backup")


def _stream_name(stream: dict[str, Any]) -> str:
    """The name ``btrfs receive`` gives the subvolume: the sent subvolume's own name."""
    return str(stream["name"])


class _Tree:
    """Where the streams of one snapshot (or of the current state) are received.

    A read-only subvolume cannot be moved to another directory, so every stream is received
    in its final directory: the root in ``parent``, then each nested subvolume inside the
    received root (made writable for that moment; its received UUID stays).
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.root = parent / "rootfs"
        self.nested: list[str] = []
        self._reopened: list[Path] = []

    def directory_for(self, stream: dict[str, Any]) -> Path:
        rel = stream["path"]
        if not rel:
            self.parent.mkdir(parents=True, exist_ok=True)
            return self.parent
        holder = self.root
        for other in sorted(self.nested, key=len, reverse=True):
            if rel.startswith(other + "/"):
                holder = self.root / other
                break
        if btrfs.is_readonly(holder):
            btrfs.set_readonly(holder, False)
            self._reopened.append(holder)
        directory: Path = (self.root / rel).parent
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def received(self, stream: dict[str, Any], directory: Path) -> Path:
        got = directory / _stream_name(stream)
        if stream["path"]:
            self.nested.append(stream["path"])
            return got
        if got != self.root:
            os.rename(got, self.root)
        return self.root

    def close(self) -> None:
        for holder in reversed(self._reopened):
            btrfs.set_readonly(holder, True)
        self._reopened = []


def _known_received(pool: Pool, name: str) -> dict[str, str]:
    """received UUID -> UUID of every received subvolume in a container's snapshots."""
    found = {}
    for snap in snapshots.list_snapshots(pool, name):
        root = Path(snap.path) / "rootfs"
        for sub_path in [root, *(root / rel for rel, _ in btrfs.nested(root))]:
            sub = btrfs.info(sub_path)
            if sub.received_uuid:
                found[sub.received_uuid] = sub.uuid
    return found


def _receive_all(pool: Pool, path: Path, header: dict[str, Any],
                 trees: dict[str | None, _Tree], progress: Progress | None) -> None:
    """Receive every stream of ``path`` into its tree, checking each result."""
    known = btrfs.received_index(pool.root)
    done = 0
    with open(path, "rb") as f:
        reader = backupformat.Reader(f, os.fspath(path))
        current: _Tree | None = None
        for index, chunks in reader.streams():
            stream = header["streams"][index]
            tree = trees[stream["snapshot"]]
            if current is not None and current is not tree:
                current.close()
            current = tree
            directory = tree.directory_for(stream)
            _clear_placeholder(path, index, directory / _stream_name(stream))
            note = f"stream {index + 1}/{len(header['streams'])}"
            try:
                with btrfs.receive(directory) as stdin:
                    done = _feed(stdin, chunks, progress, done, note)
            except CommandFailed as err:
                if "No space left" in err.stderr:
                    raise NoSpace("no space left on the pool",
                                  hint="free space or grow the pool") from None
                raise BadData(f"{path}: stream {index} could not be received: "
                              f"{err.message.rsplit(': ', 1)[-1]}") from None
            sub = tree.received(stream, directory)
            _check(path, stream, sub, known)
        if current is not None:
            current.close()


def _feed(sink: IO[bytes], chunks: Iterator[bytes], progress: Progress | None, done: int,
          note: str) -> int:
    """Write a stream's chunks to a command's stdin; return the bytes done so far."""
    for chunk in chunks:
        sink.write(chunk)
        done += len(chunk)
        if progress:
            progress(done, 0, note)
    return done


def _clear_placeholder(path: Path, index: int, target: Path) -> None:
    """Make room for a nested subvolume where a snapshot of its parent left an empty
    directory in its place; anything else in the way means the file is not what it says."""
    if not os.path.lexists(target):
        return
    try:
        os.rmdir(target)
    except OSError:
        raise BadData(f"{path}: stream {index} would overwrite {target}") from None


def _check(path: Path, stream: dict[str, Any], sub: Path, known: dict[str, set[str]]) -> None:
    """Read-only, received UUID set, and made from a copy of the expected parent."""
    got = btrfs.info(sub)
    index = stream["index"]
    if got.received_uuid != stream["uuid"] or not got.readonly:
        raise BadData(f"{path}: stream {index} was not received whole")
    parent = stream.get("parent_uuid")
    if parent and got.parent_uuid not in known.get(parent, set()):
        raise BadData(f"{path}: stream {index} was not received on the expected parent")
    known.setdefault(stream["uuid"], set()).add(got.uuid)


def _snapshot_files(snap_dir: Path, snap: dict[str, Any], final: Path) -> None:
    cfg = lxcconfig.retarget(snap["config"], final.name, final, new_macs=False)
    write_new(snap_dir / "config",
              snapshots.snapshot_config(cfg, final / "snaps" / snap["name"]))
    created = datetime.datetime.fromisoformat(snap["created"]).astimezone()
    write_new(snap_dir / "ts", created.strftime("%Y:%m:%d %H:%M:%S") + "\n")
    if snap.get("comment"):
        write_new(snap_dir / "comment", snap["comment"] + "\n")
    write_new_json(snap_dir / snapshots.META,
               {"nested": snap.get("nested", {}), "created": snap["created"]})


def _trees(header: dict[str, Any], snaps_dir: Path, current_dir: Path) -> dict[str | None, _Tree]:
    trees: dict[str | None, _Tree] = {s["name"]: _Tree(snaps_dir / s["name"])
                                      for s in header["snapshots"]}
    trees[None] = _Tree(current_dir)
    return trees


def _new_rootfs(header: dict[str, Any], current: _Tree, dest: Path) -> None:
    """A writable rootfs from the received current state, which stays read-only."""
    flags = {s["path"]: bool(s["readonly"]) for s in header["streams"]
             if s["snapshot"] is None and s["path"]}
    btrfs.snapshot(current.root, dest, readonly=False, nested_readonly=flags)


def _import_full(pool: Pool, path: Path, name: str, header: dict[str, Any],
                 progress: Progress | None) -> None:
    containers.check_new_names(pool, [name], hint="import with --name NEW")
    final = pool.lxcpath / name
    with containers.lock(pool, name), pool.scratch(f"import-{name}") as scratch:
        c = scratch / "container"
        (c / "snaps").mkdir(parents=True)
        trees = _trees(header, c / "snaps", scratch / "current")
        _receive_all(pool, path, header, trees, progress)
        for snap in header["snapshots"]:
            _snapshot_files(c / "snaps" / snap["name"], snap, final)
        _new_rootfs(header, trees[None], c / "rootfs")
        src = header["container"]
        config = lxcconfig.retarget(src["config"], name, final, new_macs=name != src["name"])
        write_new(c / "config", config)
        write_new_json(c / containers.META, {
            "image": src.get("image", ""), "image_alias": src.get("image_alias", ""),
            "created": src.get("created", ""), "imported_from": header["id"]})
        rename_noreplace(c, final, f"container {name}")
    log.info("imported %s from %s", name, path)


def _apply_incremental(pool: Pool, path: Path, name: str, progress: Progress | None) -> None:
    header, _ = backupformat.summary(os.fspath(path))
    base = header["base"]
    if not (pool.lxcpath / name / "config").is_file():
        raise NotFound(f"{path} is incremental and container {name} does not exist",
                       hint="import its full backup first, or all files of the chain in order")
    d = containers.require(pool, name)
    with containers.lock(pool, name):
        containers.require_stopped(pool, name)
        known = _known_received(pool, name)
        if base["uuid"] not in known:
            raise NotFound(
                f"{path} builds on snapshot {base['snapshot']} of backup {base['backup_id']}, "
                f"which container {name} does not have",
                hint="import the earlier backup first")
        present = {s.name for s in snapshots.list_snapshots(pool, name)}
        clash = [s["name"] for s in header["snapshots"] if s["name"] in present]
        if clash:
            raise AlreadyExists(f"container {name} already has snapshot {clash[0]}")
        with pool.scratch(f"import-{name}") as scratch:
            trees = _trees(header, scratch / "snaps", scratch / "current")
            _receive_all(pool, path, header, trees, progress)
            for snap in header["snapshots"]:
                _snapshot_files(scratch / "snaps" / snap["name"], snap, d)
            _new_rootfs(header, trees[None], scratch / "rootfs")
            config = lxcconfig.retarget(header["container"]["config"], name, d,
                                        new_macs=False)
            pool.record_intent(scratch, [(d / "config", config)],
                               done_if_subvolume=(d / "rootfs",
                                                  btrfs.info(scratch / "rootfs").uuid))
            (d / "snaps").mkdir(exist_ok=True)
            for snap in header["snapshots"]:
                rename_noreplace(scratch / "snaps" / snap["name"], d / "snaps" / snap["name"],
                                 f"snapshot {name}/{snap['name']}")
            exchange(scratch / "rootfs", d / "rootfs")
            write_atomic(d / "config", config)
    log.info("applied %s to %s", path, name)


# -- verify ---------------------------------------------------------------------------------


def verify(paths: list[Path], progress: Progress | None = None) -> list[BackupInfo]:
    """Check headers, checksums and that every stream parses; check the chain's links."""
    result = []
    known_snapshots: set[str] = set()
    done = 0
    for path in paths:
        if not path.is_file():
            raise NotFound(f"backup file {path} not found")
        with open(path, "rb") as f:
            reader = backupformat.Reader(f, os.fspath(path))
            for index, chunks in reader.streams():
                try:
                    with btrfs.dump() as stdin:
                        done = _feed(stdin, chunks, progress, done,
                                     f"{path.name}, stream {index + 1}")
                except CommandFailed as err:
                    raise BadData(f"{path}: stream {index} does not parse: "
                                  f"{err.message.rsplit(': ', 1)[-1]}") from None
            header, trailer = reader.header, reader.trailer
        base = header.get("base")
        if base and known_snapshots and base["uuid"] not in known_snapshots:
            raise BadData(f"{path} does not build on the backups given before it")
        known_snapshots.update(s["uuid"] for s in header["snapshots"])
        result.append((_info(os.fspath(path), header, trailer), base, header["snapshots"]))
    _check_order(result)
    return [info for info, _, _ in result]


def _check_order(found: list[tuple[BackupInfo, Any, list[dict[str, Any]]]]) -> None:
    """A file that builds on a later one means the chain was given out of order."""
    for i, (info, base, _) in enumerate(found):
        for later, _, snaps in found[i + 1:]:
            if base and any(s["uuid"] == base["uuid"] for s in snaps):
                raise BadData(f"{info.file} builds on {later.file}, given after it",
                              hint="give the chain in order, oldest first")

