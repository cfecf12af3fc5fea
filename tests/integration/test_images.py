"""Images on real loop pools through the real command line.

Covers building the busybox image, importing LXC / Incus tarballs (every compression, split
and unified, with metadata), hostile and damaged archives, aliases, deleting an image that
containers came from, kills in the middle of an import, and progress on a terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import random
import select
import signal
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import btrfsutil
import pytest

from tests.conftest import REPO, Host, kill_when, wait_for

pytestmark = pytest.mark.integration

BLOCK = 512
GIB = 1024**3
COMPRESSORS = ("none", "gzip", "xz", "zstd")
SUFFIX = {"none": ".tar", "gzip": ".tar.gz", "xz": ".tar.xz", "zstd": ".tar.zst"}


# -- helpers ----------------------------------------------------------------------------------


def _json(host: Host, *args: str) -> Any:
    return json.loads(host.run(*args, "--format", "json").stdout)


def _fingerprints(host: Host) -> list[str]:
    return sorted(image["fingerprint"] for image in _json(host, "image", "list"))


def _aliases(host: Host) -> list[str]:
    return sorted(a for image in _json(host, "image", "list") for a in image["aliases"])


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _sha256(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def _assert_readonly_subvolume(path: Path) -> None:
    assert btrfsutil.is_subvolume(path), path
    assert btrfsutil.get_subvolume_read_only(path), path
    with pytest.raises(OSError):
        (path / "new-file").write_text("x")


def _tar(dest: Path, *tar_args: str, compress: str = "none") -> Path:
    """Run GNU tar with ``tar_args`` and pipe the archive through ``compress`` into ``dest``."""
    argv = ["tar", "--numeric-owner", "--xattrs", "-cf", "-", *tar_args]
    with open(dest, "wb") as out:
        if compress == "none":
            subprocess.run(argv, stdout=out, check=True)
            return dest
        tar = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert tar.stdout is not None
        subprocess.run([compress, "-c"], stdin=tar.stdout, stdout=out, check=True)
        tar.stdout.close()
        assert tar.wait() == 0
    return dest


def _rootfs_tarball(rootfs: Path, dest: Path, compress: str = "none",
                    extra: Path | None = None) -> Path:
    """A tarball of ``rootfs``, plus the top-level files of ``extra`` if given."""
    args = ["-C", str(rootfs), "."]
    if extra is not None:
        args += ["-C", str(extra), *sorted(os.listdir(extra))]
    return _tar(dest, *args, compress=compress)


def _marked_tarball(rootfs: Path, tmp: Path, compress: str = "none") -> Path:
    """A tarball of ``rootfs`` with one unique file, so that its import is never a no-op."""
    extra = tmp / _unique("extra")
    extra.mkdir()
    (extra / "marker").write_text(uuid.uuid4().hex)
    return _rootfs_tarball(rootfs, tmp / f"{extra.name}{SUFFIX[compress]}", compress, extra)


def _entry(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "",
           size: int | None = None) -> bytes:
    """One tar member, header written by tarfile and data padded to whole blocks.

    ``size`` lets the header claim more data than follows it.
    """
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 1_700_000_000
    ti.size = len(data) if size is None else size
    header = ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    return header + data + b"\0" * (-len(data) % BLOCK)


END = b"\0" * (2 * BLOCK)
# Every hostile archive starts with harmless members, so extraction is under way when the
# bad member arrives and the half-made image has to be removed.
PREFIX = (_entry("bin", tarfile.DIRTYPE) + _entry("bin/hello", data=b"hello\n")
          + _entry("etc", tarfile.DIRTYPE))


def _up(target: Path) -> str:
    """A relative path from anywhere inside the rootfs up to the host's ``target``."""
    return "../" * 40 + os.fspath(target).lstrip("/")


def _outside_state(outside: Path) -> dict[str, tuple[int, ...]]:
    """What an escape would change: the outside directory, its entries and /etc/passwd."""
    state = {}
    for path in (outside, *outside.iterdir(), Path("/etc/passwd")):
        st = os.lstat(path)
        state[os.fspath(path)] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
                                  st.st_size, st.st_mtime_ns)
    return state


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the pool that hostile archives aim at."""
    path = tmp_path / "outside"
    path.mkdir(mode=0o700)
    (path / "victim").write_text("untouched\n")
    return path


def _assert_refused(host: Host, archive: Path, fragment: str | tuple[str, ...],
                    outside: Path | None) -> str:
    """Import ``archive``: exit 7, one line with (one of) ``fragment``, nothing left anywhere."""
    before = _fingerprints(host)
    outside_before = _outside_state(outside) if outside else None
    alias = _unique("refused")

    line = host.fails(7, "image", "import", str(archive), "--alias", alias)

    fragments = (fragment,) if isinstance(fragment, str) else fragment
    assert any(f in line for f in fragments), line
    assert host.leftovers() == []
    assert _fingerprints(host) == before
    host.fails(3, "image", "info", alias)
    if outside is not None:
        assert _outside_state(outside) == outside_before
    return line


@pytest.fixture(scope="module")
def busybox_rootfs(shared_host: Host) -> Path:
    rootfs = Path(_json(shared_host, "image", "info", "busybox")["path"])
    assert (rootfs / "bin" / "busybox").is_file()
    return rootfs


@pytest.fixture(scope="module")
def big_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 200 MiB of incompressible files: an import of it takes a good second."""
    path = tmp_path_factory.mktemp("big") / "big.tar"
    with open(path, "wb") as f:
        f.write(_entry("data", tarfile.DIRTYPE))
        for i in range(50):
            f.write(_entry(f"data/f{i:02}", data=os.urandom(4 << 20)))
        f.write(END)
    return path


# -- build ------------------------------------------------------------------------------------


def test_build_busybox_twice_stores_one_image(host: Host) -> None:
    first = host.run("image", "build", "busybox", "--alias", "busybox").stdout.strip()
    second = host.run("image", "build", "busybox", "--alias", "busybox").stdout.strip()

    assert first == second
    assert len(first) == 64 and all(c in "0123456789abcdef" for c in first)
    images = _json(host, "image", "list")
    assert [(i["fingerprint"], i["aliases"]) for i in images] == [(first, ["busybox"])]

    rootfs = host.pool / "images" / first / "rootfs"
    assert images[0]["path"] == os.fspath(rootfs)
    assert (rootfs / "bin" / "busybox").is_file()
    _assert_readonly_subvolume(rootfs)
    probe = subprocess.run(
        ["/usr/bin/python3", "-c",
         "import btrfsutil, sys; p = sys.argv[1]; "
         "print(btrfsutil.is_subvolume(p), btrfsutil.get_subvolume_read_only(p))",
         os.fspath(rootfs)],
        capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["True", "True"]


# -- import -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", COMPRESSORS)
def test_import_rootfs_tarball(shared_host: Host, busybox_rootfs: Path, tmp_path: Path,
                               name: str, compress: str) -> None:
    host = shared_host
    tarball = _rootfs_tarball(busybox_rootfs, tmp_path / f"rootfs{SUFFIX[compress]}", compress)
    alias = _unique(f"imp-{compress}")
    before = _fingerprints(host)

    fp = host.run("image", "import", str(tarball), "--alias", alias).stdout.strip()
    again = host.run("image", "import", str(tarball)).stdout.strip()

    assert fp == again == _sha256(tarball)
    assert fp not in before
    assert _fingerprints(host) == sorted([*before, fp])
    info = _json(host, "image", "info", alias)
    assert info["fingerprint"] == fp
    assert info["aliases"] == [alias]
    assert info["source"] == os.fspath(tarball)
    assert info["size"] == _json(host, "image", "info", "busybox")["size"]
    rootfs = Path(info["path"])
    assert rootfs == host.pool / "images" / fp / "rootfs"
    _assert_readonly_subvolume(rootfs)
    assert (rootfs / "bin/busybox").read_bytes() == (busybox_rootfs / "bin/busybox").read_bytes()
    assert os.readlink(rootfs / "bin/sh") == os.readlink(busybox_rootfs / "bin/sh")
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777

    host.run("launch", alias, name)
    try:
        assert _json(host, "info", name)["state"] == "RUNNING"
        assert host.run("exec", name, "--", "/bin/sh", "-c", "echo ok").stdout == "ok\n"
    finally:
        host.run("delete", "--force", name)
    assert name not in host.names()


def test_import_keeps_setuid_owner_and_xattrs(shared_host: Host, busybox_rootfs: Path,
                                              tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    prog = extra / "suid-prog"
    prog.write_bytes(b"#!/bin/sh\necho hi\n")
    os.chown(prog, 1234, 5678)
    os.chmod(prog, 0o4755)  # after chown, which clears the setuid bit
    os.setxattr(prog, "user.x", b"y")
    tarball = _rootfs_tarball(busybox_rootfs, tmp_path / "suid.tar.gz", "gzip", extra)

    fp = shared_host.run("image", "import", str(tarball)).stdout.strip()

    imported = shared_host.pool / "images" / fp / "rootfs" / "suid-prog"
    st = os.lstat(imported)
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.getxattr(imported, "user.x") == b"y"
    assert imported.read_bytes() == prog.read_bytes()


# -- metadata ---------------------------------------------------------------------------------


METADATA_YAML = """\
architecture: {arch}
creation_date: 1700000000
properties:
  description: {description}
  os: busybox
templates: {{}}
"""

HOSTILE_CONFIG = """\
# an LXC-style image config with lines an image must not be able to set
lxc.include = LXC_TEMPLATE_CONFIG/common.conf
lxc.hook.pre-start = /bin/false
lxc.mount.entry = /etc etc none bind,create=dir 0 0
lxc.include = LXC_TEMPLATE_CONFIG/../../../../etc/passwd
lxc.arch = {arch}
"""


def _meta_dir(tmp: Path, description: str, *, config: bool = True) -> Path:
    meta = tmp / _unique("meta")
    meta.mkdir()
    arch = os.uname().machine
    (meta / "metadata.yaml").write_text(METADATA_YAML.format(arch=arch, description=description))
    if config:
        (meta / "config").write_text(HOSTILE_CONFIG.format(arch=arch))
    return meta


def test_import_with_metadata_tarball(shared_host: Host, busybox_rootfs: Path, tmp_path: Path,
                                      name: str) -> None:
    host = shared_host
    description = _unique("split image")
    meta = _tar(tmp_path / "meta.tar.xz", "-C", str(_meta_dir(tmp_path, description)),
                "metadata.yaml", "config", compress="xz")
    rootfs = _rootfs_tarball(busybox_rootfs, tmp_path / "rootfs.tar.gz", "gzip")

    fp = host.run("image", "import", str(rootfs), "--meta", str(meta)).stdout.strip()

    assert fp == _sha256(meta, rootfs)
    info = _json(host, "image", "info", fp)
    assert info["description"] == description
    assert info["architecture"] == os.uname().machine
    conf = (host.pool / "images" / fp / "lxc.conf").read_text()
    lines = [line.strip() for line in conf.splitlines()]
    assert "lxc.include = /usr/share/lxc/config/common.conf" in lines
    assert "hook" not in conf
    assert "lxc.mount.entry" not in conf
    assert "passwd" not in conf and "LXC_TEMPLATE_CONFIG" not in conf

    # The refused hook would make the start fail: the container starting proves it is gone.
    host.run("launch", fp, name)
    try:
        assert "hook" not in (host.lxcpath / name / "config").read_text()
        assert host.run("exec", name, "--", "/bin/sh", "-c", "echo ok").stdout == "ok\n"
    finally:
        host.run("delete", "--force", name)


def test_import_unified_tarball(shared_host: Host, busybox_rootfs: Path, tmp_path: Path) -> None:
    description = _unique("unified image")
    meta = _meta_dir(tmp_path, description, config=False)
    unified = _tar(tmp_path / "unified.tar.zst", "-C", str(meta), "metadata.yaml",
                   "-C", str(busybox_rootfs.parent), "rootfs", compress="zstd")
    names = subprocess.run(["tar", "-tf", str(unified)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert names[0] == "metadata.yaml" and names[1] == "rootfs/"

    fp = shared_host.run("image", "import", str(unified)).stdout.strip()

    info = _json(shared_host, "image", "info", fp)
    assert info["description"] == description
    assert info["architecture"] == os.uname().machine
    rootfs = Path(info["path"])
    assert (rootfs / "bin/busybox").read_bytes() == (busybox_rootfs / "bin/busybox").read_bytes()
    assert not (rootfs / "rootfs").exists()
    assert not (rootfs / "metadata.yaml").exists()
    assert sorted(os.listdir(rootfs)) == sorted(os.listdir(busybox_rootfs))


# -- hostile and damaged archives -------------------------------------------------------------


def _absolute(out: Path) -> bytes:
    return PREFIX + _entry(os.fspath(out / "absolute"), data=b"pwned\n") + END


def _dotdot(out: Path) -> bytes:
    return PREFIX + _entry("bin/" + _up(out / "dotdot"), data=b"pwned\n") + END


def _symlink_escape(out: Path) -> bytes:
    return (PREFIX + _entry("escape", tarfile.SYMTYPE, link=_up(out))
            + _entry("escape/pwned", data=b"pwned\n") + END)


def _write_through_symlink(out: Path) -> bytes:
    # An absolute link target is fine (it resolves inside the container); writing through it
    # while extracting is not.
    return (PREFIX + _entry("abs", tarfile.SYMTYPE, link=os.fspath(out))
            + _entry("abs/pwned", data=b"pwned\n") + END)


def _hardlink_absolute(out: Path) -> bytes:
    return PREFIX + _entry("etc/passwd", tarfile.LNKTYPE, link="/etc/passwd") + END


def _hardlink_dotdot(out: Path) -> bytes:
    return (PREFIX + _entry("etc/passwd", tarfile.LNKTYPE, link="etc/" + _up(Path("/etc/passwd")))
            + END)


def _hardlink_not_in_archive(out: Path) -> bytes:
    return PREFIX + _entry("etc/shadow", tarfile.LNKTYPE, link="etc/passwd") + END


def _oversized(out: Path) -> bytes:
    # The header claims 100 GiB, far more than the 2 GiB pool; only a few blocks follow.
    return PREFIX + _entry("bin/huge", size=100 * GIB) + b"x" * (4 * BLOCK)


# A hard link's target may be refused for its own sake or as "not an earlier file".
HARD_LINK = "is a hard link to"
HOSTILE: dict[str, tuple[Callable[[Path], bytes], str | tuple[str, ...]]] = {
    "absolute-path": (_absolute, "has an absolute path"),
    "dotdot": (_dotdot, "contains '..'"),
    "symlink-escape": (_symlink_escape, "'escape' links outside the root"),
    "write-through-symlink": (_write_through_symlink, "'abs/pwned' lies below a symlink"),
    "hardlink-absolute": (_hardlink_absolute, (HARD_LINK, "'/etc/passwd' has an absolute")),
    "hardlink-dotdot": (_hardlink_dotdot, (HARD_LINK, "contains '..'")),
    "hardlink-not-in-archive": (_hardlink_not_in_archive, f"'etc/shadow' {HARD_LINK}"),
    "oversized": (_oversized, "'bin/huge' (107374182400 bytes) does not fit"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archive_is_refused(shared_host: Host, tmp_path: Path, outside: Path,
                                    case: str) -> None:
    build, fragment = HOSTILE[case]
    archive = tmp_path / f"{case}.tar"
    archive.write_bytes(build(outside))

    _assert_refused(shared_host, archive, fragment, outside)

    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "untouched\n"


def test_directory_member_over_symlink_stays_inside(shared_host: Host, tmp_path: Path,
                                                    outside: Path) -> None:
    # 'link' -> outside, then a directory 'link', then a file 'link/pwned': the directory must
    # replace the link (or the archive be refused), never reuse the outside directory.
    archive = tmp_path / "dir-over-symlink.tar"
    archive.write_bytes(PREFIX + _entry("link", tarfile.SYMTYPE, link=os.fspath(outside))
                        + _entry("link", tarfile.DIRTYPE)
                        + _entry("link/pwned", data=b"pwned\n") + END)
    before = _outside_state(outside)

    proc = shared_host.run("image", "import", str(archive), check=False)

    assert _outside_state(outside) == before
    assert sorted(os.listdir(outside)) == ["victim"]
    assert shared_host.leftovers() == []
    assert proc.returncode in (0, 7), proc.stderr
    if proc.returncode == 0:
        rootfs = shared_host.pool / "images" / proc.stdout.strip() / "rootfs"
        assert not (rootfs / "link").is_symlink()
        assert (rootfs / "link" / "pwned").read_text() == "pwned\n"


def _payload(kind: str) -> bytes:
    """About 300 KiB of made-up text, or of random bytes (stored raw by every compressor)."""
    rnd = random.Random(2)
    if kind == "random":
        return rnd.randbytes(300 * 1024)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rnd.choices(letters, k=rnd.randint(2, 9))) for _ in range(500)]
    return b" ".join(rnd.choices(words, k=50_000))


def _compress(data: bytes, compress: str) -> bytes:
    return subprocess.run([compress, "-c"], input=data, capture_output=True,
                          check=True).stdout


# What the one line about a damaged compressed archive may say.
DAMAGED = ("damaged", "truncated", "corrupt", "checksum", "CRC")

# Each compressor has a checksum over the whole content at the end of its stream, which only
# counts if the reader gets there.  Zeros after the tar end marker are allowed (GNU tar pads
# to 10 KiB records); 64 KiB of them here put the checksum well past the end marker.
@pytest.mark.parametrize(("compress", "payload"), [
    ("gzip", "text"), ("gzip", "random"), ("xz", "text"), ("xz", "random"), ("zstd", "text"),
    ("zstd", "random"),
])
def test_bit_flipped_archive_is_refused(shared_host: Host, tmp_path: Path, compress: str,
                                        payload: str) -> None:
    plain = PREFIX + _entry("bin/blob", data=_payload(payload)) + END + b"\0" * (128 * BLOCK)
    flipped = bytearray(_compress(plain, compress))
    flipped[len(flipped) // 2] ^= 0x01
    archive = tmp_path / f"flipped{SUFFIX[compress]}"
    archive.write_bytes(flipped)
    assert subprocess.run([compress, "-t", str(archive)], capture_output=True).returncode != 0

    _assert_refused(shared_host, archive, DAMAGED, None)


def test_gzip_checksum_mismatch_is_bad_data(shared_host: Host, tmp_path: Path) -> None:
    plain = PREFIX + _entry("bin/blob", data=random.Random(5).randbytes(100_000)) + END
    damaged = bytearray(_compress(plain, "gzip"))
    damaged[-8] ^= 0x01  # the CRC-32 of the gzip trailer
    archive = tmp_path / "bad-crc.tar.gz"
    archive.write_bytes(damaged)

    _assert_refused(shared_host, archive, DAMAGED, None)


def test_truncated_gzip_is_refused(shared_host: Host, busybox_rootfs: Path,
                                   tmp_path: Path) -> None:
    good = _marked_tarball(busybox_rootfs, tmp_path, "gzip")
    data = good.read_bytes()
    archive = tmp_path / "truncated.tar.gz"
    archive.write_bytes(data[: len(data) // 2])

    _assert_refused(shared_host, archive, DAMAGED, None)


@pytest.mark.parametrize("content", [b"just some text, not an archive\n" * 100, b""],
                         ids=["text", "empty"])
def test_non_archive_is_refused(shared_host: Host, tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "not-an-image.tar"
    archive.write_bytes(content)

    _assert_refused(shared_host, archive, "not a readable tar archive", None)


# -- bad arguments ----------------------------------------------------------------------------


def test_import_missing_file(shared_host: Host, busybox_rootfs: Path, tmp_path: Path) -> None:
    before = _fingerprints(shared_host)
    missing = tmp_path / "no-such-image.tar.gz"
    rootfs = _marked_tarball(busybox_rootfs, tmp_path)

    line = shared_host.fails(3, "image", "import", str(missing))
    assert str(missing) in line
    line = shared_host.fails(3, "image", "import", str(rootfs), "--meta", str(missing))
    assert str(missing) in line

    assert _fingerprints(shared_host) == before
    assert shared_host.leftovers() == []


@pytest.mark.parametrize("alias", ["bad/alias", "-x", "a" * 64, "..", "x y"])
def test_import_invalid_alias(shared_host: Host, busybox_rootfs: Path, tmp_path: Path,
                              alias: str) -> None:
    before = _fingerprints(shared_host)
    aliases = _aliases(shared_host)
    tarball = _marked_tarball(busybox_rootfs, tmp_path)

    line = shared_host.fails(2, "image", "import", str(tarball), f"--alias={alias}")

    assert "invalid image alias" in line
    assert _fingerprints(shared_host) == before
    assert _aliases(shared_host) == aliases
    assert shared_host.leftovers() == []


# -- aliases and lookup -----------------------------------------------------------------------


def test_aliases_and_lookup(shared_host: Host) -> None:
    host = shared_host
    fp = _json(host, "image", "info", "busybox")["fingerprint"]
    new = _unique("alias")

    host.run("image", "alias", "set", new, fp[:16])
    assert _json(host, "image", "info", new)["fingerprint"] == fp
    assert new in _json(host, "image", "info", fp)["aliases"]
    assert _json(host, "image", "info", fp[:12])["fingerprint"] == fp
    assert any(new in i["aliases"] for i in _json(host, "image", "list") if i["fingerprint"] == fp)

    host.run("image", "alias", "delete", new)
    assert new not in _json(host, "image", "info", fp)["aliases"]
    assert "busybox" in _json(host, "image", "info", fp)["aliases"]
    assert new in host.fails(3, "image", "info", new)
    assert new in host.fails(3, "image", "alias", "delete", new)
    host.fails(3, "image", "alias", "set", new, "0" * 64)
    host.fails(3, "image", "info", "f" * 64)
    assert new in host.fails(2, "image", "alias", "set", f"{new}/x", fp)
    host.fails(3, "image", "info", new)


# -- deletion ---------------------------------------------------------------------------------


def test_delete_image_keeps_its_containers(host: Host, name: str) -> None:
    fp = _json(host, "image", "info", "busybox")["fingerprint"]
    host.run("create", "busybox", name)

    host.run("image", "delete", "busybox")

    assert _fingerprints(host) == []
    assert not (host.pool / "images" / fp).exists()
    host.fails(3, "image", "info", "busybox")
    host.fails(3, "create", "busybox", "t-another")
    host.run("start", name)
    assert host.run("exec", name, "--", "true").returncode == 0
    assert host.run("exec", name, "--", "/bin/sh", "-c", "echo ok").stdout == "ok\n"
    listed = {c["name"]: c for c in _json(host, "list")}
    assert listed[name]["state"] == "RUNNING"
    assert listed[name]["image_fingerprint"] == fp
    host.run("delete", "--force", name)
    assert host.names() == []
    assert host.leftovers() == []


# -- interruption -----------------------------------------------------------------------------


def test_kill_during_import_leaves_nothing(shared_host: Host, big_tarball: Path) -> None:
    host = shared_host
    before = _fingerprints(host)
    alias = _unique("killed")
    proc = host.spawn("image", "import", str(big_tarball), "--alias", alias)

    kill_when(proc, lambda: host.leftovers())

    assert proc.returncode == -signal.SIGKILL
    left = host.leftovers()
    assert left and all(entry.startswith("image-import.") for entry in left), left
    assert _fingerprints(host) == before
    assert host.leftovers() == []
    host.fails(3, "image", "info", alias)


def test_sigterm_during_import_cleans_up(shared_host: Host, big_tarball: Path) -> None:
    host = shared_host
    before = _fingerprints(host)
    proc = host.spawn("image", "import", str(big_tarball))

    wait_for(lambda: host.leftovers() or proc.poll() is not None, timeout=30)
    assert proc.poll() is None, "the import finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("lxcow: error: "), err
    assert host.leftovers() == []
    assert _fingerprints(host) == before


# -- progress ---------------------------------------------------------------------------------


def _run_on_terminal(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal; return its status, stdout and stderr."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=slave, cwd=REPO)
    finally:
        os.close(slave)
    terminal = b""
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(master)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        proc.wait(timeout=timeout)
    return proc.returncode, out, terminal.decode(errors="replace")


def test_progress_on_a_terminal(shared_host: Host, busybox_rootfs: Path, tmp_path: Path) -> None:
    tarball = _marked_tarball(busybox_rootfs, tmp_path, "gzip")

    rc, out, err = _run_on_terminal(shared_host.argv("image", "import", str(tarball)))

    assert rc == 0, err
    assert out == _sha256(tarball) + "\n"
    assert "importing:" in err
    assert "%" in err


def test_no_progress_in_a_pipe(shared_host: Host, busybox_rootfs: Path, tmp_path: Path) -> None:
    tarball = _marked_tarball(busybox_rootfs, tmp_path, "gzip")

    proc = shared_host.run("image", "import", str(tarball))

    assert proc.stdout == _sha256(tarball) + "\n"
    assert proc.stderr == ""

