"""Containers: an LXC config and a writable rootfs subvolume in the pool's lxcpath.

``containers/<name>/config`` and ``rootfs`` are all LXC needs; ``lxcow.json`` beside them
records the image and the creation time.  Containers made by other LXC tools in the same
lxcpath are listed too (without an image).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lxcow import btrfs, liblxc, lxcconfig, names
from lxcow.errors import AlreadyExists, NotFound, PreconditionFailed, UsageError
from lxcow.fsutil import read_json, rename_noreplace, write_atomic, write_new, write_new_json
from lxcow.liblxc import State
from lxcow.log import get as get_logger
from lxcow.pool import Pool

log = get_logger(__name__)

META = "lxcow.json"
DEFAULT_STOP_TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class Container:
    name: str
    state: str
    image: str
    image_alias: str
    created: str
    ipv4: tuple[str, ...]
    pid: int | None
    autostart: bool
    path: str


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _dir(pool: Pool, name: str) -> Path:
    return pool.lxcpath / name


def require(pool: Pool, name: str) -> Path:
    names.check_name(name)
    d = _dir(pool, name)
    if not (d / "config").is_file():
        raise NotFound(f"container {name} not found", hint="see 'lxcow list'")
    return d


def current_state(pool: Pool, name: str) -> State:
    return liblxc.state(name, pool.lxcpath)


def require_stopped(pool: Pool, name: str) -> None:
    state = current_state(pool, name)
    if state is not State.STOPPED:
        raise PreconditionFailed(f"container {name} is {state.value.lower()}",
                                 hint=f"stop it first: lxcow stop {name}")


def lock(pool: Pool, name: str) -> contextlib.AbstractContextManager[None]:
    return pool.lock("container", name)


# -- reading --------------------------------------------------------------------------------


def info(pool: Pool, name: str) -> Container:
    d = require(pool, name)
    return _describe(pool, name, d)


def _describe(pool: Pool, name: str, d: Path) -> Container:
    try:
        meta = read_json(d / META)
    except (FileNotFoundError, ValueError):
        created = datetime.datetime.fromtimestamp(os.stat(d / "config").st_mtime,
                                                  tz=datetime.UTC)
        meta = {"created": created.replace(microsecond=0).isoformat()}
    state = current_state(pool, name)
    running = state in (State.RUNNING, State.FROZEN)
    try:
        text = (d / "config").read_text()
    except OSError:
        text = ""
    return Container(
        name=name,
        state=state.value,
        image=meta.get("image", ""),
        image_alias=meta.get("image_alias", ""),
        created=meta.get("created", ""),
        ipv4=tuple(liblxc.ipv4_addresses(name, pool.lxcpath)) if state is State.RUNNING else (),
        pid=liblxc.init_pid(name, pool.lxcpath) if running else None,
        autostart=lxcconfig.value_of(text, "lxc.start.auto") == "1",
        path=os.fspath(d),
    )


def list_containers(pool: Pool) -> list[Container]:
    result = []
    for entry in sorted(os.listdir(pool.lxcpath)):
        d = pool.lxcpath / entry
        if entry.startswith(".") or not (d / "config").is_file():
            continue
        result.append(_describe(pool, entry, d))
    return result


# -- creating -------------------------------------------------------------------------------


def check_new_names(pool: Pool, new: Sequence[str], *, hint: str | None = None) -> None:
    """Refuse, before anything changes, invalid, repeated or already used names."""
    if not new:
        raise UsageError("no container name given")
    for name in new:
        names.check_name(name)
    seen = set()
    for name in new:
        if name in seen:
            raise UsageError(f"container name {name} is given twice")
        seen.add(name)
        if os.path.lexists(_dir(pool, name)):
            raise AlreadyExists(f"container {name} already exists", hint=hint)


def _write_files(scratch: Path, name: str, config: str, meta: dict[str, str]) -> None:
    write_new(scratch / "config", config)
    write_new_json(scratch / META, meta)
    _set_hostname_file(scratch / "rootfs", name)


def _set_hostname_file(rootfs: Path, name: str) -> None:
    """Rewrite /etc/hostname of a rootfs, if it has one, without following its symlinks."""
    try:
        etc = os.open(rootfs / "etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fd = os.open("hostname", os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, dir_fd=etc)
    except OSError:
        return
    finally:
        os.close(etc)
    try:
        os.write(fd, f"{name}\n".encode())
    finally:
        os.close(fd)


def create(pool: Pool, image_ref: str, new: Sequence[str],
           network: lxcconfig.Network | None = None) -> list[Container]:
    """Create containers from an image: one writable snapshot each, all or none."""
    from lxcow import images

    check_new_names(pool, new)
    if network is not None:
        network.check()
    fp = images.resolve(pool, image_ref)
    alias = image_ref if image_ref != fp and not fp.startswith(image_ref) else ""
    image_conf = images.lxc_config(pool, fp)
    apparmor = lxcconfig.apparmor_enabled()
    made: list[Container] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(pool.lock("image", fp, shared=True))
        if not (pool.images / fp).is_dir():
            raise NotFound(f"image {image_ref} not found")
        try:
            for name in new:
                stack.enter_context(lock(pool, name))
                final = _dir(pool, name)
                with pool.scratch(f"create-{name}") as scratch:
                    btrfs.snapshot(pool.images / fp / "rootfs", scratch / "rootfs", readonly=False)
                    config = lxcconfig.render(name, final, image_conf, network,
                                              apparmor=apparmor)
                    meta = {"image": fp, "image_alias": alias, "created": _now()}
                    _write_files(scratch, name, config, meta)
                    rename_noreplace(scratch, final, f"container {name}")
                made.append(_new(name, final, meta))
                log.info("created %s", name)
        except BaseException:
            for c in made:
                with contextlib.suppress(Exception):
                    _remove(pool, c.name)
            raise
    return made


def _new(name: str, d: Path, meta: dict[str, str]) -> Container:
    """What info() would say of a container this command has just made (and not started)."""
    return Container(name=name, state=State.STOPPED.value, image=meta.get("image", ""),
                     image_alias=meta.get("image_alias", ""), created=meta["created"],
                     ipv4=(), pid=None, autostart=False, path=os.fspath(d))


def copy(pool: Pool, source: str, new: str) -> Container:
    """A clone of container ``source`` (or snapshot ``NAME/SNAP``) as a writable snapshot.

    The clone gets its own hostname and MAC addresses.  A running source is frozen for the
    moment of the snapshot so that the copy is consistent.
    """
    from lxcow import snapshots

    src_name, snap = snapshots.parse_ref(source)
    src = require(pool, src_name)
    check_new_names(pool, [new])
    first, second = sorted([src_name, new])
    with lock(pool, first), lock(pool, second):
        src = require(pool, src_name)
        final = _dir(pool, new)
        with pool.scratch(f"copy-{new}") as scratch:
            if snap is None:
                with frozen(pool, src_name):
                    btrfs.snapshot(src / "rootfs", scratch / "rootfs", readonly=False)
                config = (src / "config").read_text()
            else:
                config = snapshots.clone_rootfs(pool, src_name, snap, scratch / "rootfs")
            config = lxcconfig.retarget(config, new, final)
            try:
                meta = read_json(src / META)
            except (FileNotFoundError, ValueError):
                meta = {}
            meta.update({"created": _now(), "copied_from": source})
            _write_files(scratch, new, config, meta)
            rename_noreplace(scratch, final, f"container {new}")
    return dataclasses.replace(_new(new, final, meta),
                               autostart=lxcconfig.value_of(config, "lxc.start.auto") == "1")


@contextlib.contextmanager
def frozen(pool: Pool, name: str) -> Iterator[None]:
    """Keep a running container frozen, with its data synced, for the length of the block."""
    if current_state(pool, name) is not State.RUNNING:
        yield
        return
    liblxc.freeze(name, pool.lxcpath)
    start = time.monotonic()
    try:
        btrfs.syncfs(_dir(pool, name) / "rootfs")
        yield
    finally:
        liblxc.unfreeze(name, pool.lxcpath)
        log.debug("%s was frozen for %.1f ms", name, (time.monotonic() - start) * 1000)


# -- lifecycle ------------------------------------------------------------------------------


def start(pool: Pool, name: str) -> Container:
    require(pool, name)
    with lock(pool, name):
        state = current_state(pool, name)
        if state is not State.STOPPED:
            raise PreconditionFailed(f"container {name} is already {state.value.lower()}")
        liblxc.start(name, pool.lxcpath)
    return info(pool, name)


def autostart(pool: Pool) -> list[Container]:
    """Start the stopped containers marked boot.autostart (lxc.start.auto = 1).

    As lxc-autostart does: higher lxc.start.order first, waiting lxc.start.delay seconds
    after each.  Meant to run once at boot.
    """
    marked = []
    for c in list_containers(pool):
        if not c.autostart or c.state != State.STOPPED.value:
            continue
        text = (Path(c.path) / "config").read_text()
        order = _int(lxcconfig.value_of(text, "lxc.start.order"))
        delay = _int(lxcconfig.value_of(text, "lxc.start.delay"))
        marked.append((-order, c.name, delay))
    started = []
    for _, name, delay in sorted(marked):
        started.append(start(pool, name))
        if delay > 0:
            time.sleep(delay)
    return started


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def stop(pool: Pool, name: str, *, force: bool = False,
         timeout: int = DEFAULT_STOP_TIMEOUT) -> Container:
    require(pool, name)
    with lock(pool, name):
        stop_locked(pool, name, force=force, timeout=timeout)
    return info(pool, name)


def stop_locked(pool: Pool, name: str, *, force: bool, timeout: int) -> None:
    state = current_state(pool, name)
    if state is State.STOPPED:
        raise PreconditionFailed(f"container {name} is not running")
    if state is State.FROZEN:
        liblxc.unfreeze(name, pool.lxcpath)
    liblxc.stop(name, pool.lxcpath, timeout=timeout, force=force)


def restart(pool: Pool, name: str, *, force: bool = False,
            timeout: int = DEFAULT_STOP_TIMEOUT) -> Container:
    require(pool, name)
    with lock(pool, name):
        if current_state(pool, name) is not State.STOPPED:
            stop_locked(pool, name, force=force, timeout=timeout)
        liblxc.start(name, pool.lxcpath)
    return info(pool, name)


def freeze(pool: Pool, name: str) -> Container:
    require(pool, name)
    with lock(pool, name):
        state = current_state(pool, name)
        if state is not State.RUNNING:
            raise PreconditionFailed(f"container {name} is {state.value.lower()}, not running")
        liblxc.freeze(name, pool.lxcpath)
    return info(pool, name)


def unfreeze(pool: Pool, name: str) -> Container:
    require(pool, name)
    with lock(pool, name):
        state = current_state(pool, name)
        if state is not State.FROZEN:
            raise PreconditionFailed(f"container {name} is {state.value.lower()}, not frozen")
        liblxc.unfreeze(name, pool.lxcpath)
    return info(pool, name)


def delete(pool: Pool, name: str, *, force: bool = False) -> None:
    require(pool, name)
    with lock(pool, name):
        if current_state(pool, name) is not State.STOPPED:
            if not force:
                require_stopped(pool, name)
            stop_locked(pool, name, force=True, timeout=0)
        _remove(pool, name)
        pool.drop_lock("container", name)


def _remove(pool: Pool, name: str) -> None:
    with pool.discard(_dir(pool, name), f"delete-{name}"):
        pass
    log.info("deleted %s", name)


def rename(pool: Pool, name: str, new: str) -> Container:
    from lxcow import snapshots

    old_dir = require(pool, name)
    check_new_names(pool, [new])
    first, second = sorted([name, new])
    with lock(pool, first), lock(pool, second):
        require(pool, name)
        require_stopped(pool, name)
        new_dir = _dir(pool, new)
        config = lxcconfig.retarget((old_dir / "config").read_text(), new, new_dir,
                                    new_macs=False)
        writes = [(new_dir / "config", config), *snapshots.snapshot_configs(pool, name, new_dir)]
        with pool.scratch(f"rename-{name}-{new}") as journal:
            # If killed after the directory moved, the next command writes the new configs.
            pool.record_intent(journal, writes, done_if_exists=new_dir)
            rename_noreplace(old_dir, new_dir, f"container {new}")
            for path, text in writes:
                write_atomic(path, text)
        pool.drop_lock("container", name)
    return info(pool, new)


# -- running commands and config ------------------------------------------------------------


def execute(pool: Pool, name: str, argv: Sequence[str], env: dict[str, str]) -> int:
    require(pool, name)
    if not argv:
        raise UsageError("no command given", hint="lxcow exec NAME -- COMMAND...")
    state = current_state(pool, name)
    if state is not State.RUNNING:
        raise PreconditionFailed(f"container {name} is {state.value.lower()}, not running",
                                 hint=f"start it first: lxcow start {name}")
    full_env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/root", "USER": "root", "TERM": os.environ.get("TERM", "dumb")}
    full_env.update(env)
    return liblxc.attach(name, pool.lxcpath, argv, full_env)


def config_get(pool: Pool, name: str, key: str) -> str | None:
    require(pool, name)
    f = lxcconfig.friendly(key)
    raw_key = f.raw_key if f else _raw_key(key)
    return liblxc.config(name, pool.lxcpath).get(raw_key)


def _raw_key(key: str) -> str:
    if not key.startswith("lxc."):
        raise UsageError(f"unknown config key {key}",
                         hint="use an lxc.* key or one of " + ", ".join(lxcconfig.FRIENDLY_KEYS))
    return key


def config_set(pool: Pool, name: str, key: str, value: str | None) -> None:
    """Set (or, with ``value`` None, unset) a key; limits also apply to a running container."""
    d = require(pool, name)
    f = lxcconfig.friendly(key)
    raw_key = f.raw_key if f else _raw_key(key)
    if raw_key in ("lxc.uts.name", "lxc.rootfs.path"):
        raise UsageError(f"{raw_key} is managed by lxcow", hint="use 'lxcow rename'")
    converted = f.convert(value) if f and value is not None else value
    with lock(pool, name):
        view = liblxc.config(name, pool.lxcpath)
        if converted is None:
            view.clear(raw_key)
        else:
            view.clear(raw_key) if view.get(raw_key) is not None else None
            view.set(raw_key, converted)
        tmp = d / ".config.new"
        view.save(tmp)
        os.rename(tmp, d / "config")
        live = f is not None and f.cgroup_item is not None and converted is not None
        if live and current_state(pool, name) is State.RUNNING:
            assert f is not None and f.cgroup_item is not None and converted is not None
            view.set_cgroup(f.cgroup_item, converted)
