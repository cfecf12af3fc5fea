"""The ``lxcow`` command: a thin layer over :class:`lxcow.api.Lxcow`.

Data goes to stdout, logs and errors to stderr.  Each lxcow error maps to its documented
exit status; ``exec`` passes the command's own status through.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from lxcow import __version__
from lxcow.errors import ExitCode, Interrupted, LxcowError

if TYPE_CHECKING:
    from lxcow.api import Lxcow

log = logging.getLogger("lxcow")

CONTAINER_COLUMNS = [("name", "NAME"), ("state", "STATE"), ("image", "IMAGE"),
                     ("created", "CREATED"), ("ipv4", "IPV4")]
IMAGE_COLUMNS = [("fingerprint", "FINGERPRINT"), ("aliases", "ALIASES"), ("size", "SIZE"),
                 ("created", "CREATED"), ("description", "DESCRIPTION")]


# -- output helpers -------------------------------------------------------------------------


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _format_arg(p: argparse.ArgumentParser) -> None:
    from lxcow.output import FORMATS

    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format (default: table)")


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


EXIT_HELP = """exit status:
  0 success            1 system error        2 usage error
  3 not found          4 already exists      5 busy (locked by another command)
  6 wrong state        7 bad or unsafe data  8 no space left
  130 interrupted      exec returns the status of the command it ran
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error, like every other lxcow error."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(ExitCode.USAGE),
                  f"lxcow: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lxcow",
        description="LXC containers on a Btrfs backing store.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"lxcow {__version__}")
    p.add_argument("--state-dir", metavar="DIR",
                   help="state directory (env LXCOW_STATE_DIR, default /var/lib/lxcow)")
    p.add_argument("-v", "--debug", action="store_true",
                   help="log each step, command and ioctl on stderr")
    p.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for another command's lock (default 60)")
    sub = p.add_subparsers(dest="subcommand", metavar="COMMAND", required=True,
                           parser_class=_Parser)

    def add(name: str, func: Any, help: str, parent: Any = sub) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("init", cmd_init, "create and mount the pool (harmless when it exists)")
    sp.add_argument("--size", help="size of the loop file (default 20%% of free space, 5-30GiB)")
    sp.add_argument("--source", metavar="DEVICE|DIR",
                    help="a block device to format, or a directory on Btrfs, "
                    "instead of a loop file")
    sp.add_argument("--force", action="store_true", help="format a device that holds a filesystem")

    pool = add("pool", None, "pool commands").add_subparsers(dest="pool_command", required=True,
                                                             metavar="COMMAND")
    _format_arg(add("info", cmd_pool_info, "show the pool's source, space and versions", pool))

    image = add("image", None, "image commands").add_subparsers(dest="image_command",
                                                                required=True, metavar="COMMAND")
    sp = add("build", cmd_image_build, "build an image from the host's static busybox", image)
    sp.add_argument("kind", choices=["busybox"], help="what to build")
    sp.add_argument("--alias", help="alias for the image")
    sp = add("import", cmd_image_import, "import an LXC or Incus image tarball", image)
    sp.add_argument("rootfs", metavar="ROOTFS_TARBALL")
    sp.add_argument("--meta", metavar="METADATA_TARBALL", help="the image's metadata tarball")
    sp.add_argument("--alias", help="alias for the image")
    _format_arg(add("list", cmd_image_list, "list images", image))
    sp = add("info", cmd_image_info, "show one image", image)
    sp.add_argument("image", metavar="IMAGE")
    _format_arg(sp)
    sp = add("delete", cmd_image_delete, "delete images (containers made from them stay)", image)
    sp.add_argument("images", nargs="+", metavar="IMAGE")
    alias = add("alias", None, "set or delete image aliases", image).add_subparsers(
        dest="alias_command", required=True, metavar="COMMAND")
    sp = add("set", cmd_alias_set, "point an alias at an image", alias)
    sp.add_argument("alias")
    sp.add_argument("image", metavar="IMAGE")
    sp = add("delete", cmd_alias_delete, "delete an alias", alias)
    sp.add_argument("alias")

    for name, func, text in (("create", cmd_create, "create containers from an image"),
                             ("launch", cmd_launch, "create containers and start them")):
        sp = add(name, func, text)
        sp.add_argument("image", metavar="IMAGE", help="image alias or fingerprint")
        sp.add_argument("names", nargs="+", metavar="NAME")
        sp.add_argument("--network", metavar="bridge=NAME[,ipv4=ADDR/LEN]",
                        help="attach a veth to an existing host bridge (default: no network)")

    for name, func, text in (("start", cmd_start, "start containers"),
                             ("freeze", cmd_freeze, "freeze running containers"),
                             ("unfreeze", cmd_unfreeze, "thaw frozen containers")):
        add(name, func, text).add_argument("names", nargs="+", metavar="NAME")
    for name, func, text in (("stop", cmd_stop, "stop containers"),
                             ("restart", cmd_restart, "stop and start containers")):
        sp = add(name, func, text)
        sp.add_argument("names", nargs="+", metavar="NAME")
        sp.add_argument("--force", action="store_true", help="kill instead of a clean shutdown")
        sp.add_argument("--timeout", type=int, default=30,
                        help="seconds to wait for a clean shutdown before killing (default 30)")
    sp = add("delete", cmd_delete, "delete stopped containers")
    sp.add_argument("names", nargs="+", metavar="NAME")
    sp.add_argument("--force", action="store_true", help="stop running containers first")
    sp = add("rename", cmd_rename, "rename a stopped container")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("new", metavar="NEW")
    sp = add("copy", cmd_copy, "clone a container or a snapshot (new hostname and MACs)")
    sp.add_argument("source", metavar="SOURCE", help="NAME, or NAME/SNAPSHOT")
    sp.add_argument("new", metavar="NEW")
    sp = add("info", cmd_info, "show one container")
    sp.add_argument("name", metavar="NAME")
    _format_arg(sp)
    _format_arg(add("list", cmd_list, "list containers"))
    sp = add("exec", cmd_exec, "run a command in a running container")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="set an environment variable (repeatable)")
    sp.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")

    snapshot = add("snapshot", None, "read-only snapshots of containers").add_subparsers(
        dest="snapshot_command", required=True, metavar="COMMAND")
    sp = add("create", cmd_snapshot_create,
             "snapshot a container (a running one is frozen for the moment)", snapshot)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("snapshot", metavar="SNAPSHOT", nargs="?",
                    help="snapshot name (default: the first unused snap0, snap1, ...)")
    sp.add_argument("--comment", help="a note kept with the snapshot")
    sp = add("list", cmd_snapshot_list, "list a container's snapshots", snapshot)
    sp.add_argument("name", metavar="NAME")
    _format_arg(sp)
    sp = add("show", cmd_snapshot_show, "show one snapshot", snapshot)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("snapshot", metavar="SNAPSHOT")
    _format_arg(sp)
    sp = add("delete", cmd_snapshot_delete, "delete snapshots", snapshot)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("snapshots", metavar="SNAPSHOT", nargs="+")
    sp = add("restore", cmd_snapshot_restore,
             "restore a container to a snapshot (newer snapshots are kept)", snapshot)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("snapshot", metavar="SNAPSHOT")
    sp.add_argument("--force", action="store_true",
                    help="kill a running container instead of a clean shutdown")
    sp.add_argument("--timeout", type=int, default=30,
                    help="seconds to wait for a clean shutdown before killing (default 30)")

    sp = add("export", cmd_export, "write a backup of a container to a file")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--instance-only", action="store_true", help="leave the snapshots out")
    sp.add_argument("--base", metavar="EARLIER_FILE",
                    help="incremental: only what changed since the newest snapshot in it")
    sp.add_argument("--compression", choices=["zstd", "none"], default="zstd",
                    help="compression of the streams (default zstd)")
    sp.add_argument("--portable", action="store_true",
                    help="a plain tarball of the rootfs and config, for hosts without Btrfs")
    sp = add("import", cmd_import, "create or update a container from backup files")
    sp.add_argument("files", nargs="+", metavar="FILE",
                    help="a full backup, incremental ones in order, or a portable tarball")
    sp.add_argument("--name", metavar="NEW", help="name of the container (default: the original)")
    backup = add("backup", None, "check backup files").add_subparsers(
        dest="backup_command", required=True, metavar="COMMAND")
    sp = add("verify", cmd_backup_verify,
             "check headers, checksums and streams of backups, without touching any pool", backup)
    sp.add_argument("files", nargs="+", metavar="FILE")
    _format_arg(sp)
    sp = add("info", cmd_backup_info, "show what a backup file holds", backup)
    sp.add_argument("file", metavar="FILE")
    _format_arg(sp)

    config = add("config", None, "read and change container config").add_subparsers(
        dest="config_command", required=True, metavar="COMMAND")
    keys = ("KEY is a raw lxc.* key or one of limits.memory, limits.cpu, limits.processes, "
            "boot.autostart")
    sp = add("get", cmd_config_get, "print a config value", config)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("key", metavar="KEY", help=keys)
    sp = add("set", cmd_config_set, "set a config value", config)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("key", metavar="KEY", help=keys)
    sp.add_argument("value", metavar="VALUE")
    sp = add("unset", cmd_config_unset, "remove a config value", config)
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("key", metavar="KEY", help=keys)
    return p


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted("terminated")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; for ``exec``, everything after the first ``--`` is the command."""
    parser = build_parser()
    argv = list(argv)
    if "--" in argv and _subcommand(argv) == "exec":
        cut = argv.index("--")
        head = parser.parse_args(argv[:cut])
        head.command = [*head.command, *argv[cut:]]
        return head
    return parser.parse_args(argv)


def _subcommand(argv: list[str]) -> str | None:
    """The first word that is neither a global option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word in ("--state-dir", "--lock-timeout"):
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif word == "--":
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="lxcow: %(message)s",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    from lxcow.api import Lxcow

    lx = Lxcow(args.state_dir, lock_timeout=args.lock_timeout)
    try:
        return int(args.func(lx, args))
    except LxcowError as err:
        print(f"lxcow: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    except BrokenPipeError:
        return int(ExitCode.FAILURE)
    except OSError as err:
        from lxcow.errors import from_oserror

        mapped = from_oserror(err, err.filename or "system call")
        print(f"lxcow: error: {mapped}", file=sys.stderr)
        return int(mapped.exit_code)
    except KeyboardInterrupt:
        print("lxcow: error: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
