"""What each ``lxcow`` command does: call the API, print its data on stdout.

Each ``cmd_*`` function takes the API object and the parsed arguments and returns the exit
status.  Errors are raised as lxcow exceptions and turned into one line by ``lxcow.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

    from lxcow.api import Lxcow

CONTAINER_COLUMNS = [("name", "NAME"), ("state", "STATE"), ("image", "IMAGE"),
                     ("created", "CREATED"), ("ipv4", "IPV4")]
IMAGE_COLUMNS = [("fingerprint", "FINGERPRINT"), ("aliases", "ALIASES"), ("size", "SIZE"),
                 ("created", "CREATED"), ("description", "DESCRIPTION")]


# -- output helpers ---------------------------------------------------------------------------


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _container_rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    from lxcow.output import to_data

    rows = []
    for c in items:
        row = to_data(c)
        row["image"] = c.image_alias or c.image[:12]
        row["image_fingerprint"] = c.image
        rows.append(row)
    return rows


def _image_rows(items: Sequence[Any], table: bool) -> list[dict[str, Any]]:
    from lxcow.output import to_data
    from lxcow.units import format_size

    rows = []
    for image in items:
        row = to_data(image)
        if table:
            row["fingerprint"] = image.short
            row["size"] = format_size(image.size)
        rows.append(row)
    return rows


# -- commands -------------------------------------------------------------------------------


def cmd_init(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.units import parse_size

    size = parse_size(a.size, "pool size") if a.size else None
    lx.init(size=size, source=a.source, force=a.force)
    return 0


def cmd_pool_info(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_record, to_data
    from lxcow.units import format_size

    record = to_data(lx.pool_info())
    if a.format == "table":
        for key in ("size", "used", "free"):
            record[key] = format_size(record[key])
    _print(render_record(record, a.format))
    return 0


def cmd_pool_unmount(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.unmount()
    return 0


def cmd_image_build(lx: Lxcow, a: argparse.Namespace) -> int:
    image = lx.image_build_busybox(alias=a.alias)
    _print(image.fingerprint + "\n")
    return 0


def cmd_image_import(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.progress import TerminalProgress

    progress = TerminalProgress("importing")
    try:
        image = lx.image_import(a.rootfs, a.meta, alias=a.alias, progress=progress)
    finally:
        progress.close()
    _print(image.fingerprint + "\n")
    return 0


def cmd_image_list(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_list

    _print(render_list(_image_rows(lx.images(), a.format == "table"), IMAGE_COLUMNS, a.format))
    return 0


def cmd_image_info(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_record

    _print(render_record(_image_rows([lx.image(a.image)], False)[0], a.format))
    return 0


def cmd_image_delete(lx: Lxcow, a: argparse.Namespace) -> int:
    for ref in a.images:
        lx.image_delete(ref)
    return 0


def cmd_alias_set(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.image_alias_set(a.alias, a.image)
    return 0


def cmd_alias_delete(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.image_alias_delete(a.alias)
    return 0


def _network(a: argparse.Namespace) -> Any:
    if not a.network:
        return None
    from lxcow.lxcconfig import Network

    return Network.parse(a.network)


def cmd_create(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.create(a.image, a.names, network=_network(a))
    return 0


def cmd_launch(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.launch(a.image, a.names, network=_network(a))
    return 0


def _each(a: argparse.Namespace, action: Any) -> int:
    for name in a.names:
        action(name)
    return 0


def cmd_start(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lx.start)


def cmd_autostart(lx: Lxcow, a: argparse.Namespace) -> int:
    for c in lx.autostart():
        _print(c.name + "\n")
    return 0


def cmd_stop(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lambda n: lx.stop(n, force=a.force, timeout=a.timeout))


def cmd_restart(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lambda n: lx.restart(n, force=a.force, timeout=a.timeout))


def cmd_freeze(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lx.freeze)


def cmd_unfreeze(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lx.unfreeze)


def cmd_delete(lx: Lxcow, a: argparse.Namespace) -> int:
    return _each(a, lambda n: lx.delete(n, force=a.force))


def cmd_rename(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.rename(a.name, a.new)
    return 0


def cmd_copy(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.copy(a.source, a.new)
    return 0


def cmd_info(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_record

    _print(render_record(_container_rows([lx.info(a.name)])[0], a.format))
    return 0


def cmd_list(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_list

    _print(render_list(_container_rows(lx.list()), CONTAINER_COLUMNS, a.format))
    return 0


def cmd_exec(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.errors import UsageError

    # Options may also come after NAME: `exec NAME --env K=V -- COMMAND...`.
    command = list(a.command)
    env_items = list(a.env)
    while command and command[0] != "--" and command[0].startswith("--env"):
        option = command.pop(0)
        if option.startswith("--env="):
            env_items.append(option[len("--env="):])
        elif command:
            env_items.append(command.pop(0))
        else:
            raise UsageError("--env needs KEY=VALUE")
    if command and command[0] == "--":
        command = command[1:]
    env = {}
    for item in env_items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --env {item!r}", hint="use KEY=VALUE")
        env[key] = value
    return lx.exec(a.name, command, env)


def cmd_config_get(lx: Lxcow, a: argparse.Namespace) -> int:
    value = lx.config_get(a.name, a.key)
    if value is not None:
        _print(value + "\n")
    return 0


def cmd_config_set(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.config_set(a.name, a.key, a.value)
    return 0


def cmd_config_unset(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.config_unset(a.name, a.key)
    return 0


SNAPSHOT_COLUMNS = [("name", "NAME"), ("created", "CREATED"), ("comment", "COMMENT"),
                    ("size", "SIZE")]


def _snapshot_rows(items: Sequence[Any], table: bool) -> list[dict[str, Any]]:
    from lxcow.output import to_data
    from lxcow.units import format_size

    rows = []
    for snap in items:
        row = to_data(snap)
        if table:
            row["size"] = format_size(snap.size) if snap.size is not None else None
        rows.append(row)
    return rows


def cmd_snapshot_create(lx: Lxcow, a: argparse.Namespace) -> int:
    snap = lx.snapshot_create(a.name, a.snapshot, comment=a.comment)
    _print(snap.name + "\n")
    return 0


def cmd_snapshot_list(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_list

    rows = _snapshot_rows(lx.snapshots(a.name), a.format == "table")
    _print(render_list(rows, SNAPSHOT_COLUMNS, a.format))
    return 0


def cmd_snapshot_show(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_record

    _print(render_record(_snapshot_rows([lx.snapshot(a.name, a.snapshot)], False)[0],
                         a.format))
    return 0


def cmd_snapshot_delete(lx: Lxcow, a: argparse.Namespace) -> int:
    for snap in a.snapshots:
        lx.snapshot_delete(a.name, snap)
    return 0


def cmd_snapshot_restore(lx: Lxcow, a: argparse.Namespace) -> int:
    lx.snapshot_restore(a.name, a.snapshot, force=a.force, timeout=a.timeout)
    return 0


BACKUP_COLUMNS = [("file", "FILE"), ("kind", "KIND"), ("container", "CONTAINER"),
                  ("created", "CREATED"), ("snapshots", "SNAPSHOTS"), ("bytes", "STREAM BYTES"),
                  ("complete", "COMPLETE")]


def _backup_rows(items: Sequence[Any]) -> list[dict[str, Any]]:
    from lxcow.output import to_data

    return [to_data(b) for b in items]


def cmd_export(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.progress import TerminalProgress

    progress = TerminalProgress("exporting")
    try:
        lx.export(a.name, a.file, instance_only=a.instance_only, base=a.base,
                  compression=a.compression, portable=a.portable, progress=progress)
    finally:
        progress.close()
    return 0


def cmd_import(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.progress import TerminalProgress

    progress = TerminalProgress("importing")
    try:
        container = lx.import_backups(a.files, name=a.name, progress=progress)
    finally:
        progress.close()
    _print(container.name + "\n")
    return 0


def cmd_backup_verify(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_list
    from lxcow.progress import TerminalProgress

    progress = TerminalProgress("verifying")
    try:
        found = lx.backup_verify(a.files, progress=progress)
    finally:
        progress.close()
    _print(render_list(_backup_rows(found), BACKUP_COLUMNS, a.format))
    return 0


def cmd_backup_info(lx: Lxcow, a: argparse.Namespace) -> int:
    from lxcow.output import render_record

    _print(render_record(_backup_rows([lx.backup_info(a.file)])[0], a.format))
    return 0


# -- parser ---------------------------------------------------------------------------------
