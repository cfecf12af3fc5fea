"""Building a minimal root filesystem from the host's statically linked busybox."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from lxcow.errors import NotFound, PreconditionFailed
from lxcow.run import run

CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox")

DIRECTORIES = (
    "bin", "dev", "dev/pts", "etc", "etc/init.d", "home", "lib", "lib64", "mnt", "proc",
    "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/lib", "usr/sbin", "var",
    "var/log",
)

FILES = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n", 0o644),
    "etc/group": ("root:x:0:root\n", 0o644),
    "etc/shadow": ("root:*:0:0:99999:7:::\n", 0o600),
    "etc/fstab": ("", 0o644),
    "etc/profile": ('export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1="\\h:\\w# "\n', 0o644),
    "etc/inittab": (
        "::sysinit:/etc/init.d/rcS\n"
        "console::askfirst:/bin/sh\n"
        "::ctrlaltdel:/sbin/reboot\n",
        0o644,
    ),
    "etc/init.d/rcS": ("#!/bin/sh\n/bin/mount -a\n", 0o755),
}

# What a container made from this image needs in its LXC config.
LXC_CONFIG = """\
lxc.signal.halt = SIGUSR1
lxc.signal.reboot = SIGTERM
lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0
"""


def find_static_busybox() -> Path:
    for candidate in CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            if _is_dynamic(path):
                raise PreconditionFailed(
                    f"{path} is dynamically linked",
                    hint="install busybox-static (./install.sh does)",
                )
            return path
    raise NotFound("no busybox on this host", hint="install busybox-static (./install.sh does)")


def _is_dynamic(path: Path) -> bool:
    """Whether an ELF file names a program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if ident[:4] != b"\x7fELF" or ident[4] != 2:
            return True
        endian = "<" if ident[5] == 1 else ">"
        phoff, = struct.unpack_from(endian + "Q", ident, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", ident, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:
            return True
    return False


def populate(rootfs: Path, busybox: Path) -> None:
    """Fill the empty directory ``rootfs`` with a busybox system."""
    for d in DIRECTORIES:
        (rootfs / d).mkdir(mode=0o755, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    os.chmod(rootfs / "root", 0o700)

    shutil.copyfile(busybox, rootfs / "bin/busybox")
    os.chmod(rootfs / "bin/busybox", 0o755)
    applets = run([busybox, "--list-full"]).stdout.split()
    for applet in sorted(set(applets)):
        link = rootfs / applet
        if applet in ("bin/busybox", "sbin/init") or link.parent == rootfs:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(link):
            os.symlink("/bin/busybox", link)
    os.symlink("/bin/busybox", rootfs / "sbin/init")

    for rel, (text, mode) in FILES.items():
        path = rootfs / rel
        path.write_text(text)
        os.chmod(path, mode)
