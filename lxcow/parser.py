"""The command line's grammar.

Building every sub-parser costs more than a simple command's whole work, so only the parser
of the command being run is built; ``--help`` and unknown commands build them all.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lxcow import __version__, commands
from lxcow.errors import ExitCode

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import NoReturn

FORMATS = ("table", "json", "yaml", "csv")
STOP_TIMEOUT_HELP = "seconds to wait for a clean shutdown before killing (default 30)"
KEY_HELP = ("KEY is a raw lxc.* key or one of limits.memory, limits.cpu, limits.processes, "
            "boot.autostart")
EXIT_HELP = """exit status:
  0 success            1 system error        2 usage error
  3 not found          4 already exists      5 busy (locked by another command)
  6 wrong state        7 bad or unsafe data  8 no space left
  130 interrupted      exec returns the status of the command it ran
"""

Builder = Callable[[argparse.ArgumentParser], None]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error, like every other lxcow error."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(ExitCode.USAGE),
                  f"lxcow: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter asks shutil (and with it lzma and bz2) for the terminal width on
    every argument added; os answers as well, for a fraction of the import time."""

    def __init__(self, prog: str) -> None:
        import os

        try:
            width = os.get_terminal_size(2).columns
        except OSError:
            width = 80
        super().__init__(prog, width=max(width, 40) - 2)


def _format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format (default: table)")


def _command(parent: argparse._SubParsersAction,  # type: ignore[type-arg]
             name: str, func: Callable[..., int] | None, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = parent.add_parser(name, help=text, description=text,
                                                   formatter_class=_Formatter)
    p.set_defaults(func=func)
    return p


def _group(p: argparse.ArgumentParser, dest: str,
           entries: list[tuple[str, Callable[..., int] | None, str, Builder]]) -> None:
    sub = p.add_subparsers(dest=dest, required=True, metavar="COMMAND")
    for name, func, text, build in entries:
        build(_command(sub, name, func, text))


def _names(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME")


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME")


def _stopping(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="kill instead of a clean shutdown")
    p.add_argument("--timeout", type=int, default=30, help=STOP_TIMEOUT_HELP)


# -- one builder per command ----------------------------------------------------------------


def _init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", help="size of the loop file (default 20%% of free space, 5-30GiB)")
    p.add_argument("--source", metavar="DEVICE|DIR",
                   help="a block device to format, or a directory on Btrfs, "
                   "instead of a loop file")
    p.add_argument("--force", action="store_true", help="format a device that holds a filesystem")


def _pool(p: argparse.ArgumentParser) -> None:
    _group(p, "pool_command", [
        ("info", commands.cmd_pool_info, "show the pool's source, space and versions", _format),
        ("unmount", commands.cmd_pool_unmount,
         "unmount the pool (the next command mounts it again)", lambda q: None),
    ])


def _image(p: argparse.ArgumentParser) -> None:
    def build(q: argparse.ArgumentParser) -> None:
        q.add_argument("kind", choices=["busybox"], help="what to build")
        q.add_argument("--alias", help="alias for the image")

    def import_(q: argparse.ArgumentParser) -> None:
        q.add_argument("rootfs", metavar="ROOTFS_TARBALL")
        q.add_argument("--meta", metavar="METADATA_TARBALL", help="the image's metadata tarball")
        q.add_argument("--alias", help="alias for the image")

    def info(q: argparse.ArgumentParser) -> None:
        q.add_argument("image", metavar="IMAGE")
        _format(q)

    def delete(q: argparse.ArgumentParser) -> None:
        q.add_argument("images", nargs="+", metavar="IMAGE")

    def alias(q: argparse.ArgumentParser) -> None:
        def set_(r: argparse.ArgumentParser) -> None:
            r.add_argument("alias")
            r.add_argument("image", metavar="IMAGE")

        def delete_(r: argparse.ArgumentParser) -> None:
            r.add_argument("alias")

        _group(q, "alias_command", [
            ("set", commands.cmd_alias_set, "point an alias at an image", set_),
            ("delete", commands.cmd_alias_delete, "delete an alias", delete_),
        ])

    _group(p, "image_command", [
        ("build", commands.cmd_image_build, "build an image from the host's static busybox",
         build),
        ("import", commands.cmd_image_import, "import an LXC or Incus image tarball", import_),
        ("list", commands.cmd_image_list, "list images", _format),
        ("info", commands.cmd_image_info, "show one image", info),
        ("delete", commands.cmd_image_delete, "delete images (containers made from them stay)",
         delete),
        ("alias", None, "set or delete image aliases", alias),
    ])


def _creating(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="image alias or fingerprint")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--network", metavar="bridge=NAME[,ipv4=ADDR/LEN]",
                   help="attach a veth to an existing host bridge (default: no network)")


def _stop(p: argparse.ArgumentParser) -> None:
    _names(p)
    _stopping(p)


def _delete(p: argparse.ArgumentParser) -> None:
    _names(p)
    p.add_argument("--force", action="store_true", help="stop running containers first")


def _rename(p: argparse.ArgumentParser) -> None:
    _name(p)
    p.add_argument("new", metavar="NEW")


def _copy(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="NAME, or NAME/SNAPSHOT")
    p.add_argument("new", metavar="NEW")


def _info(p: argparse.ArgumentParser) -> None:
    _name(p)
    _format(p)


def _exec(p: argparse.ArgumentParser) -> None:
    _name(p)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable (repeatable)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...")


def _snapshot(p: argparse.ArgumentParser) -> None:
    def create(q: argparse.ArgumentParser) -> None:
        _name(q)
        q.add_argument("snapshot", metavar="SNAPSHOT", nargs="?",
                       help="snapshot name (default: the first unused snap0, snap1, ...)")
        q.add_argument("--comment", help="a note kept with the snapshot")

    def one(q: argparse.ArgumentParser) -> None:
        _name(q)
        q.add_argument("snapshot", metavar="SNAPSHOT")

    def show(q: argparse.ArgumentParser) -> None:
        one(q)
        _format(q)

    def delete(q: argparse.ArgumentParser) -> None:
        _name(q)
        q.add_argument("snapshots", metavar="SNAPSHOT", nargs="+")

    def restore(q: argparse.ArgumentParser) -> None:
        one(q)
        q.add_argument("--force", action="store_true",
                       help="kill a running container instead of a clean shutdown")
        q.add_argument("--timeout", type=int, default=30, help=STOP_TIMEOUT_HELP)

    _group(p, "snapshot_command", [
        ("create", commands.cmd_snapshot_create,
         "snapshot a container (a running one is frozen for the moment)", create),
        ("list", commands.cmd_snapshot_list, "list a container's snapshots", _info),
        ("show", commands.cmd_snapshot_show, "show one snapshot", show),
        ("delete", commands.cmd_snapshot_delete, "delete snapshots", delete),
        ("restore", commands.cmd_snapshot_restore,
         "restore a container to a snapshot (newer snapshots are kept)", restore),
    ])


def _export(p: argparse.ArgumentParser) -> None:
    _name(p)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--instance-only", action="store_true", help="leave the snapshots out")
    p.add_argument("--base", metavar="EARLIER_FILE",
                   help="incremental: only what changed since the newest snapshot in it")
    p.add_argument("--compression", choices=["zstd", "none"], default="zstd",
                   help="compression of the streams (default zstd)")
    p.add_argument("--portable", action="store_true",
                   help="a plain tarball of the rootfs and config, for hosts without Btrfs")


def _import(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="a full backup, incremental ones in order, or a portable tarball")
    p.add_argument("--name", metavar="NEW", help="name of the container (default: the original)")


def _backup(p: argparse.ArgumentParser) -> None:
    def files(q: argparse.ArgumentParser) -> None:
        q.add_argument("files", nargs="+", metavar="FILE")
        _format(q)

    def file(q: argparse.ArgumentParser) -> None:
        q.add_argument("file", metavar="FILE")
        _format(q)

    _group(p, "backup_command", [
        ("verify", commands.cmd_backup_verify,
         "check headers, checksums and streams of backups, without touching any pool", files),
        ("info", commands.cmd_backup_info, "show what a backup file holds", file),
    ])


def _config(p: argparse.ArgumentParser) -> None:
    def key(q: argparse.ArgumentParser) -> None:
        _name(q)
        q.add_argument("key", metavar="KEY", help=KEY_HELP)

    def set_(q: argparse.ArgumentParser) -> None:
        key(q)
        q.add_argument("value", metavar="VALUE")

    _group(p, "config_command", [
        ("get", commands.cmd_config_get, "print a config value", key),
        ("set", commands.cmd_config_set, "set a config value", set_),
        ("unset", commands.cmd_config_unset, "remove a config value", key),
    ])


COMMANDS: dict[str, tuple[Callable[..., int] | None, str, Builder]] = {
    "init": (commands.cmd_init, "create and mount the pool (harmless when it exists)", _init),
    "pool": (None, "pool commands", _pool),
    "image": (None, "image commands", _image),
    "create": (commands.cmd_create, "create containers from an image", _creating),
    "launch": (commands.cmd_launch, "create containers and start them", _creating),
    "start": (commands.cmd_start, "start containers", _names),
    "stop": (commands.cmd_stop, "stop containers", _stop),
    "autostart": (commands.cmd_autostart,
                  "start the containers marked boot.autostart (run it at boot)", lambda p: None),
    "restart": (commands.cmd_restart, "stop and start containers", _stop),
    "freeze": (commands.cmd_freeze, "freeze running containers", _names),
    "unfreeze": (commands.cmd_unfreeze, "thaw frozen containers", _names),
    "delete": (commands.cmd_delete, "delete stopped containers", _delete),
    "rename": (commands.cmd_rename, "rename a stopped container", _rename),
    "copy": (commands.cmd_copy, "clone a container or a snapshot (new hostname and MACs)",
             _copy),
    "info": (commands.cmd_info, "show one container", _info),
    "list": (commands.cmd_list, "list containers", _format),
    "exec": (commands.cmd_exec, "run a command in a running container", _exec),
    "snapshot": (None, "read-only snapshots of containers", _snapshot),
    "export": (commands.cmd_export, "write a backup of a container to a file", _export),
    "import": (commands.cmd_import, "create or update a container from backup files", _import),
    "backup": (None, "check backup files", _backup),
    "config": (None, "read and change container config", _config),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known ``command``, only that command's part of it is built."""
    p = Parser(
        prog="lxcow",
        description="LXC containers on a Btrfs backing store.",
        epilog=EXIT_HELP,
        formatter_class=_Formatter,
    )
    p.add_argument("--version", action="version", version=f"lxcow {__version__}")
    p.add_argument("--state-dir", metavar="DIR",
                   help="state directory (env LXCOW_STATE_DIR, default /var/lib/lxcow)")
    p.add_argument("-v", "--debug", action="store_true",
                   help="log each step, command and ioctl on stderr")
    p.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for another command's lock (default 60)")
    sub = p.add_subparsers(dest="subcommand", metavar="COMMAND", required=True,
                           parser_class=Parser)
    wanted = [command] if command in COMMANDS else list(COMMANDS)
    for name in wanted:
        func, text, build = COMMANDS[name]
        build(_command(sub, name, func, text))
    return p


GLOBAL_OPTIONS_WITH_VALUE = ("--state-dir", "--lock-timeout")


def subcommand(argv: list[str]) -> str | None:
    """The first word that is neither a global option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
        elif word == "--":
            return None
    return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; for ``exec``, everything after the first ``--`` is the command."""
    command = subcommand(argv)
    parser = build_parser(command)
    if "--" in argv and command == "exec":
        cut = argv.index("--")
        head = parser.parse_args(argv[:cut])
        head.command = [*head.command, *argv[cut:]]
        return head
    return parser.parse_args(argv)
