"""Backups on real loop pools: full and incremental send streams, verify, portable tarballs.

Every test drives the real command line.  Content is compared through a manifest of every
file (type, mode, owner, size, content digest, link target, extended attributes), so an
import that loses an owner, a setuid bit or an xattr fails as surely as one that loses data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pty
import signal
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import btrfsutil
import pytest

from tests.conftest import REPO, Host, kill_when, new_host, wait_for

pytestmark = pytest.mark.integration

MiB = 1 << 20


# -- helpers -----------------------------------------------------------------------------------


def _entry(p: Path, mtimes: bool = True) -> tuple[Any, ...]:
    st = os.lstat(p)
    digest = link = ""
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(MiB), b""):
                h.update(block)
        digest = h.hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        link = os.readlink(p)
    xattrs = tuple(sorted((k, os.getxattr(p, k, follow_symlinks=False))
                          for k in os.listxattr(p, follow_symlinks=False)))
    is_dir = stat.S_ISDIR(st.st_mode)
    return (
        stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid,
        None if is_dir else st.st_size,     # a directory's size depends on how it was filled
        None if is_dir else st.st_nlink,
        None if is_dir or not mtimes else st.st_mtime_ns,
        st.st_rdev, digest, link, xattrs,
    )


def _manifest(root: Path, mtimes: bool = True) -> dict[str, tuple[Any, ...]]:
    """Relative path -> everything a backup must keep about it, for every entry below root.

    Modification times of everything but directories are included unless ``mtimes`` is
    false (a send stream keeps them to the nanosecond, a tarball does not).
    """
    result = {".": _entry(root, mtimes)}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for n in [*dirs, *files]:
            p = Path(dirpath) / n
            result[str(p.relative_to(root))] = _entry(p, mtimes)
    return result


def _populate(root: Path) -> None:
    """Files that a careless backup loses: odd owners, setuid, xattrs, hard links, holes."""
    d = root / "root"
    (d / "data").write_bytes(os.urandom(300_000))
    os.link(d / "data", d / "data.link")
    os.symlink("data", d / "sym")
    os.chown(d / "sym", 4321, 8765, follow_symlinks=False)

    odd = d / "odd"
    odd.write_text("owned by nobody we know\n")
    os.chown(odd, 1234, 5678)
    os.chmod(odd, 0o640)
    os.setxattr(odd, "user.x", b"value\x00\xff")

    # chown clears setuid, so the mode comes last, as a package manager does it.
    for fname, owner, mode in (("suid", (0, 0), 0o4755), ("sgid", (1234, 5678), 0o6711)):
        (d / fname).write_bytes(b"#!/bin/sh\necho hi\n")
        os.chown(d / fname, *owner)
        os.chmod(d / fname, mode)

    (d / "ping").write_bytes(b"\x7fELF pretend\n")
    os.chmod(d / "ping", 0o755)
    subprocess.run(["setcap", "cap_net_raw+ep", d / "ping"], check=True)

    sub = d / "shared"
    sub.mkdir()
    os.chown(sub, 1234, 5678)
    os.chmod(sub, 0o1770)
    os.setxattr(sub, "user.dir", b"on a directory")
    (d / "empty").touch()
    os.mkfifo(d / "fifo")
    with open(d / "sparse", "wb") as f:
        f.seek(3 * MiB)
        f.write(b"end")


def _snaps(host: Host, name: str) -> list[dict[str, Any]]:
    return list(json.loads(host.run("snapshot", "list", name, "--format", "json").stdout))


def _snap_view(host: Host, name: str) -> list[tuple[str, str, str]]:
    return [(s["name"], s["comment"], s["created"]) for s in _snaps(host, name)]


def _snap_trees(host: Host, name: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    return {s["name"]: _manifest(Path(s["path"]) / "rootfs") for s in _snaps(host, name)}


def _info(host: Host, path: Path) -> dict[str, Any]:
    return dict(json.loads(host.run("backup", "info", str(path), "--format", "json").stdout))


def _stray(host: Host) -> list[str]:
    """Subvolumes left in the pool's hidden temporary area."""
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        return [p for p, _ in it if ".lxcow" in p]


def _assert_clean(host: Host, names: list[str]) -> None:
    assert host.names() == names
    assert host.leftovers() == []
    assert _stray(host) == []


def _ro(path: Path) -> bool:
    return bool(btrfsutil.get_subvolume_read_only(path))


def _write_random(directory: Path, total: int, piece: int = 8 * MiB) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(piece)
    for i in range(total // piece):
        # Each piece differs, so neither zstd nor a dedupe-minded send shrinks it.
        (directory / f"r{i:03d}").write_bytes(i.to_bytes(8, "little") + block[8:])


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:") as tar:
        return {m.name: m for m in tar.getmembers()}


def _header(path: Path) -> dict[str, Any]:
    with tarfile.open(path, "r:") as tar:
        f = tar.extractfile("lxcow-backup/header.json")
        assert f is not None
        return dict(json.loads(f.read()))


def _pty_stderr(argv: list[str]) -> tuple[int, str]:
    """Run argv with stderr on a pseudo-terminal; return its exit status and what it drew."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, cwd=REPO)
    finally:
        os.close(slave)
    seen = b""
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:     # EIO: the last writer closed the terminal
                break
            if not data:
                break
            seen += data
    finally:
        os.close(master)
    assert proc.stdout is not None
    proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=60), seen.decode(errors="replace")


# -- full backups ------------------------------------------------------------------------------


def test_full_export_delete_import_is_identical(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    _populate(rootfs)
    host.run("snapshot", "create", name, "s1", "--comment", "first one")
    (rootfs / "root" / "data").write_bytes(os.urandom(100_000))
    (rootfs / "root" / "later").write_text("after s1\n")
    os.unlink(rootfs / "root" / "fifo")
    host.run("snapshot", "create", name, "s2")
    (rootfs / "root" / "latest").write_text("only in the current state\n")
    os.chmod(rootfs / "root" / "odd", 0o600)
    current = _manifest(rootfs)
    snaps = _snap_trees(host, name)
    listed = _snap_view(host, name)
    assert listed[0][1] == "first one"
    config = (host.lxcpath / name / "config").read_text()

    backup = tmp_path / "b.lxcow"
    proc = host.run("export", name, str(backup))
    assert proc.stdout == "" and proc.stderr == ""
    host.run("delete", name)
    assert name not in host.names()
    assert host.run("import", str(backup)).stdout == f"{name}\n"

    rootfs = host.lxcpath / name / "rootfs"
    assert _manifest(rootfs) == current
    assert not _ro(rootfs)
    assert os.lstat(rootfs / "root" / "data").st_ino == \
        os.lstat(rootfs / "root" / "data.link").st_ino, "a hard link stays one file"
    assert (host.lxcpath / name / "config").read_text() == config
    assert _snap_view(host, name) == listed
    assert _snap_trees(host, name) == snaps
    for s in _snaps(host, name):
        assert s["readonly"] is True
        assert _ro(Path(s["path"]) / "rootfs")
    assert "user.x" in os.listxattr(rootfs / "root" / "odd")
    assert host.leftovers() == []

    host.run("start", name)
    assert host.run("exec", name, "--", "hostname").stdout.strip() == name
    assert host.run("exec", name, "--", "cat", "/root/latest").stdout == \
        "only in the current state\n"
    host.run("delete", "--force", name)


NESTED = (("srv", False), ("var/machines", False), ("var/machines/ro", True))


def _with_nested(host: Host, name: str) -> Path:
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    btrfsutil.create_subvolume(rootfs / "var" / "machines")
    (rootfs / "var" / "machines" / "a").write_text("a1\n")
    btrfsutil.create_subvolume(rootfs / "var" / "machines" / "ro")
    (rootfs / "var" / "machines" / "ro" / "b").write_text("b1\n")
    os.chown(rootfs / "var" / "machines" / "ro" / "b", 1234, 5678)
    btrfsutil.set_subvolume_read_only(rootfs / "var" / "machines" / "ro", True)
    btrfsutil.create_subvolume(rootfs / "srv")
    (rootfs / "srv" / "c").write_bytes(os.urandom(50_000))
    return rootfs


def _assert_nested_flags(rootfs: Path) -> None:
    assert btrfsutil.is_subvolume(rootfs) and not _ro(rootfs)
    for sub, readonly in NESTED:
        assert btrfsutil.is_subvolume(rootfs / sub), sub
        assert _ro(rootfs / sub) == readonly, f"{sub} keeps its flag in the container"


def test_nested_subvolumes_of_the_current_state_survive(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    rootfs = _with_nested(host, name)
    current = _manifest(rootfs)
    backup = tmp_path / "nested.lxcow"
    host.run("export", name, str(backup))
    header = _header(backup)
    assert [(s["path"], s["readonly"]) for s in header["streams"]] == [("", False), *NESTED]
    host.run("delete", name)
    host.run("import", str(backup))

    rootfs = host.lxcpath / name / "rootfs"
    assert _manifest(rootfs) == current
    _assert_nested_flags(rootfs)
    (rootfs / "var" / "machines" / "a").write_text("writable\n")
    host.run("delete", name)
    with btrfsutil.SubvolumeIterator(host.pool) as it:
        assert not [p for p, _ in it if name in p or ".lxcow" in p]


def test_nested_subvolumes_in_snapshots_survive(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    rootfs = _with_nested(host, name)
    host.run("snapshot", "create", name, "s1")
    (rootfs / "var" / "machines" / "a").write_text("a2\n")
    (rootfs / "srv" / "d").write_text("after the snapshot\n")
    current = _manifest(rootfs)
    snaps = _snap_trees(host, name)
    backup = tmp_path / "nested.lxcow"
    host.run("export", name, str(backup))
    host.run("delete", name)
    try:
        host.run("import", str(backup))
    finally:
        assert host.leftovers() == []

    rootfs = host.lxcpath / name / "rootfs"
    assert _manifest(rootfs) == current
    _assert_nested_flags(rootfs)
    assert _snap_trees(host, name) == snaps
    snap = host.lxcpath / name / "snaps" / "s1" / "rootfs"
    for sub in ("", *(n for n, _ in NESTED)):
        assert btrfsutil.is_subvolume(snap / sub), sub
        assert _ro(snap / sub), f"{sub} is read-only in the snapshot"
    assert sorted(_snaps(host, name)[0]["nested"]) == [n for n, _ in NESTED]
    host.run("delete", name)


def test_instance_only_and_uncompressed(shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    (rootfs / "root" / "f").write_text("one\n")
    host.run("snapshot", "create", name, "s1")
    (rootfs / "root" / "f").write_text("two\n")
    current = _manifest(rootfs)

    backup = tmp_path / "plain.lxcow"
    host.run("export", name, str(backup), "--instance-only", "--compression", "none")
    info = _info(host, backup)
    assert info["snapshots"] == [] and info["streams"] == 1
    assert info["compression"] == "none" and info["kind"] == "full"
    chunks = [n for n in _members(backup) if "/streams/" in n]
    assert chunks == ["lxcow-backup/streams/0000/000000"], "no .zst chunks"
    assert "compression" in host.run("backup", "info", str(backup)).stdout

    other = name + "-i"
    assert host.run("import", str(backup), "--name", other).stdout == f"{other}\n"
    assert _snaps(host, other) == []
    assert not (host.lxcpath / other / "snaps").exists() or \
        not os.listdir(host.lxcpath / other / "snaps")
    assert _manifest(host.lxcpath / other / "rootfs") == current
    host.run("delete", name, other)


def test_export_of_a_running_container(shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("launch", "busybox", name)
    host.run("exec", name, "--", "sh", "-c", "echo from inside > /root/inside")
    backup = tmp_path / "running.lxcow"
    host.run("export", name, str(backup))
    info = json.loads(host.run("info", name, "--format", "json").stdout)
    assert info["state"] == "RUNNING", "the container is thawed again"
    assert host.leftovers() == []

    other = name + "-r"
    host.run("import", str(backup), "--name", other)
    assert (host.lxcpath / other / "rootfs" / "root" / "inside").read_text() == "from inside\n"
    config = (host.lxcpath / other / "config").read_text()
    assert f"lxc.uts.name = {other}" in config
    assert f"{host.lxcpath / name}/" not in config, "the config points at the new container"
    host.run("start", other)
    assert host.run("exec", other, "--", "hostname").stdout.strip() == other
    host.run("delete", "--force", name, other)


# -- incremental chains ------------------------------------------------------------------------


@dataclasses.dataclass
class Chain:
    host: Host
    name: str
    files: list[Path]                                 # b1 (full), b2, b3 (incremental)
    states: list[dict[str, tuple[Any, ...]]]          # the rootfs when each was written
    snaps: dict[str, dict[str, tuple[Any, ...]]]      # every snapshot's rootfs
    plain: Path                                       # b1 again, uncompressed


@pytest.fixture(scope="module")
def chain(shared_host: Host, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A container with 6 MiB of data, backed up fully (b1) then twice incrementally."""
    host = shared_host
    name = "chain-src"
    out = tmp_path_factory.mktemp("chain")
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    _write_random(rootfs / "srv", 6 * MiB, MiB)
    (rootfs / "root" / "log").write_text("1\n")
    files = [out / "b1", out / "b2", out / "b3"]
    states = []

    host.run("snapshot", "create", name, "s1", "--comment", "first")
    (rootfs / "root" / "log").write_text("1 after s1\n")
    states.append(_manifest(rootfs))
    host.run("export", name, str(files[0]))
    host.run("export", name, str(out / "b1-plain"), "--compression", "none")

    (rootfs / "srv" / "r002").write_bytes(os.urandom(MiB))
    (rootfs / "root" / "log").write_text("2\n")
    (rootfs / "root" / "new2").write_text("added for b2\n")
    host.run("snapshot", "create", name, "s2")
    (rootfs / "root" / "log").write_text("2 after s2\n")
    states.append(_manifest(rootfs))
    host.run("export", name, str(files[1]), "--base", str(files[0]))

    os.unlink(rootfs / "srv" / "r004")
    os.chown(rootfs / "srv" / "r005", 1234, 5678)
    os.setxattr(rootfs / "srv" / "r001", "user.x", b"3")
    (rootfs / "root" / "log").write_text("3\n")
    host.run("snapshot", "create", name, "s3", "--comment", "third")
    (rootfs / "root" / "new3").write_text("after s3\n")
    states.append(_manifest(rootfs))
    host.run("export", name, str(files[2]), "--base", str(files[1]))

    yield Chain(host, name, files, states, _snap_trees(host, name), out / "b1-plain")
    host.run("delete", "--force", name)


def _assert_like_source(c: Chain, name: str, step: int) -> None:
    """After importing b1..b<step>, the container is the source as it was at that export."""
    host = c.host
    rootfs = host.lxcpath / name / "rootfs"
    assert _manifest(rootfs) == c.states[step - 1]
    assert not _ro(rootfs)
    want = [f"s{i}" for i in range(1, step + 1)]
    assert [s["name"] for s in _snaps(host, name)] == want
    assert _snap_view(host, name) == _snap_view(host, c.name)[:step]
    got = _snap_trees(host, name)
    assert got == {s: c.snaps[s] for s in want}
    for s in want:
        assert _ro(host.lxcpath / name / "snaps" / s / "rootfs")


def test_chain_imports_one_file_at_a_time(chain: Chain, name: str) -> None:
    host = chain.host
    for step, f in enumerate(chain.files, 1):
        assert host.run("import", str(f), "--name", name).stdout == f"{name}\n"
        _assert_like_source(chain, name, step)
        assert host.leftovers() == []
    host.run("delete", name)


def test_chain_imports_in_one_command(chain: Chain, name: str) -> None:
    host = chain.host
    files = [str(f) for f in chain.files]
    assert host.run("import", *files, "--name", name).stdout == f"{name}\n"
    _assert_like_source(chain, name, 3)
    host.run("start", name)
    assert host.run("exec", name, "--", "hostname").stdout.strip() == name
    host.run("delete", "--force", name)


def test_incremental_backups_hold_only_the_changes(chain: Chain) -> None:
    host = chain.host
    b1, b2, b3 = (_info(host, f) for f in chain.files)
    assert b1["bytes"] > 6 * MiB
    # About 1 MiB changed between s1 and s2; a full stream would be over 6 MiB.
    assert b2["bytes"] < 2 * MiB
    assert b2["bytes"] * 3 < b1["bytes"]
    assert chain.files[1].stat().st_size < 2 * MiB
    assert b3["bytes"] < MiB, "b3 changes metadata only"
    assert [b["kind"] for b in (b1, b2, b3)] == ["full", "incremental", "incremental"]
    assert b2["base"] == b1["id"] and b3["base"] == b2["id"]
    assert b2["base_snapshot"] == "s1" and b3["base_snapshot"] == "s2"
    assert b2["snapshots"] == ["s2"] and b3["snapshots"] == ["s3"]


def test_starting_an_imported_container_does_not_break_the_next_import(
        chain: Chain, name: str) -> None:
    host = chain.host
    host.run("import", str(chain.files[0]), str(chain.files[1]), "--name", name)
    host.run("start", name)
    host.run("exec", name, "--", "sh", "-c", "echo written > /root/written; rm /root/log")
    line = host.fails(6, "import", str(chain.files[2]), "--name", name)
    assert name in line
    assert _snap_view(host, name) == _snap_view(host, chain.name)[:2]
    host.run("stop", "--force", name)

    host.run("import", str(chain.files[2]), "--name", name)
    _assert_like_source(chain, name, 3)
    assert host.leftovers() == []
    host.run("start", name)
    assert host.run("exec", name, "--", "cat", "/root/log").stdout == "3\n"
    host.run("delete", "--force", name)


# -- refusals ----------------------------------------------------------------------------------


def test_base_whose_snapshot_is_gone_or_not_a_backup(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    host.run("snapshot", "create", name, "s1")
    b1 = tmp_path / "b1"
    host.run("export", name, str(b1))

    host.run("snapshot", "create", name, "s2")
    host.run("snapshot", "delete", name, "s1")
    line = host.fails(3, "export", name, str(tmp_path / "b2"), "--base", str(b1))
    assert "s1" in line and "no longer" in line

    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(20_000))
    line = host.fails(7, "export", name, str(tmp_path / "b3"), "--base", str(junk))
    assert "junk" in line
    empty = tmp_path / "empty"
    empty.touch()
    host.fails(7, "export", name, str(tmp_path / "b4"), "--base", str(empty))
    host.fails(3, "export", name, str(tmp_path / "b5"), "--base", str(tmp_path / "nope"))

    assert sorted(os.listdir(tmp_path)) == ["b1", "empty", "junk"]
    assert host.leftovers() == []
    host.run("delete", name)


def test_bad_export_and_import_arguments(shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    b = tmp_path / "b"
    host.run("export", name, str(b), "--instance-only")
    portable = tmp_path / "p"
    host.run("export", name, str(portable), "--portable")
    kept = b.read_bytes()
    before = host.names()

    assert "nodir" in host.fails(3, "export", name, str(tmp_path / "nodir" / "b"))
    assert str(b) in host.fails(4, "export", name, str(b))
    assert b.read_bytes() == kept, "an existing file is never overwritten"
    host.fails(3, "export", name + "-missing", str(tmp_path / "c"))
    host.fails(2, "export", name, str(tmp_path / "c"), "--portable", "--base", str(b))
    host.fails(2, "export", name, str(tmp_path / "c"), "--compression", "xz")
    host.fails(2, "import", str(portable), str(b), "--name", name + "-x")
    host.fails(2, "import", str(b), "--name", "Bad_Name")
    host.fails(3, "import", str(tmp_path / "nope"), "--name", name + "-x")
    assert name in host.fails(4, "import", str(portable))
    host.fails(7, "backup", "verify", str(portable))
    host.fails(7, "backup", "info", str(portable))
    assert sorted(os.listdir(tmp_path)) == ["b", "p"]
    _assert_clean(host, before)
    host.run("delete", name)


def test_imports_in_the_wrong_order_or_onto_existing_names(chain: Chain, name: str) -> None:
    host = chain.host
    b1, b2, b3 = (str(f) for f in chain.files)
    before = host.names()

    line = host.fails(3, "import", b2, "--name", name)
    assert name in line
    host.fails(3, "import", b2, b3, "--name", name)
    _assert_clean(host, before)

    # Without --name the backup's own name is taken, and the source still has it.
    src_tree = _manifest(host.lxcpath / chain.name / "rootfs")
    src_snaps = _snap_view(host, chain.name)
    line = host.fails(4, "import", b1)
    assert chain.name in line
    assert _manifest(host.lxcpath / chain.name / "rootfs") == src_tree
    assert _snap_view(host, chain.name) == src_snaps
    _assert_clean(host, before)

    host.run("import", b1, "--name", name)
    tree = _manifest(host.lxcpath / name / "rootfs")
    assert name in host.fails(4, "import", b1, "--name", name)
    # b3 builds on s2, which this container lacks.
    host.fails(3, "import", b3, "--name", name)
    assert _manifest(host.lxcpath / name / "rootfs") == tree
    assert [s["name"] for s in _snaps(host, name)] == ["s1"]
    _assert_clean(host, sorted([*before, name]))

    host.run("import", b2, "--name", name)
    # Applying b2 twice: its snapshot is there already.
    host.fails(4, "import", b2, "--name", name)
    _assert_like_source(chain, name, 2)
    host.run("delete", name)


def _damaged(src: Path, dest: Path, how: str) -> Path:
    """A copy of ``src`` cut or with one byte flipped at the place ``how`` names."""
    members = _members(src)
    data = bytearray(src.read_bytes())
    header = members["lxcow-backup/header.json"]
    trailer = members["lxcow-backup/trailer.json"]
    chunk = members[sorted(n for n in members if "/streams/0000/" in n)[0]]
    if how == "cut-in-header":
        data = data[:header.offset_data + header.size // 2]
    elif how == "cut-in-header-block":
        data = data[:200]
    elif how == "cut-in-stream":
        data = data[:chunk.offset_data + chunk.size // 2]
    elif how == "cut-before-trailer":
        data = data[:trailer.offset]
    elif how == "cut-in-trailer":
        data = data[:trailer.offset_data + trailer.size // 2]
    elif how == "flip-in-stream":
        data[chunk.offset_data + chunk.size // 2] ^= 0x5A
    elif how == "flip-near-stream-end":
        data[chunk.offset_data + chunk.size - 3] ^= 0x01
    elif how == "flip-in-header-json":
        # A digit of the creation time: still valid JSON, only the checksum can tell.
        raw = bytes(data[header.offset_data:header.offset_data + header.size])
        at = header.offset_data + raw.index(b'"created": "') + len(b'"created": "') + 3
        data[at] = ord("0") + (data[at] - ord("0") + 1) % 10
    elif how == "flip-in-tar-block":
        data[chunk.offset + 10] ^= 0x20
    else:
        raise AssertionError(how)
    dest.write_bytes(bytes(data))
    return dest


DAMAGE = ["cut-in-header", "cut-in-header-block", "cut-in-stream", "cut-before-trailer",
          "cut-in-trailer", "flip-in-stream", "flip-near-stream-end", "flip-in-header-json",
          "flip-in-tar-block"]


@pytest.fixture(scope="module")
def applied(chain: Chain) -> Iterator[str]:
    """A container imported from b1, the target of damaged incremental imports."""
    chain.host.run("import", str(chain.files[0]), "--name", "chain-applied")
    yield "chain-applied"
    chain.host.run("delete", "--force", "chain-applied")


SOURCES = ("full", "plain", "incremental")


def _source(c: Chain, kind: str) -> Path:
    return {"full": c.files[0], "plain": c.plain, "incremental": c.files[1]}[kind]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_backups_are_refused_by_import_and_leave_nothing(
        chain: Chain, applied: str, how: str, tmp_path: Path, name: str) -> None:
    host = chain.host
    before = host.names()
    target = host.lxcpath / applied / "rootfs"
    target_tree = _manifest(target)
    target_snaps = _snap_view(host, applied)
    target_config = (host.lxcpath / applied / "config").read_text()

    for kind in SOURCES:
        bad = _damaged(_source(chain, kind), tmp_path / f"{kind}-{how}", how)
        if kind == "incremental":
            line = host.fails(7, "import", str(bad), "--name", applied)
        else:
            line = host.fails(7, "import", str(bad), "--name", name)
            host.fails(7, "import", str(bad), str(chain.files[1]), "--name", name)
        assert str(bad) in line
        _assert_clean(host, before)
        assert _manifest(target) == target_tree
        assert _snap_view(host, applied) == target_snaps
        assert (host.lxcpath / applied / "config").read_text() == target_config
        if how == "cut-before-trailer":
            assert _info(host, bad)["complete"] is False


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_backups_are_refused_by_verify(chain: Chain, how: str, tmp_path: Path) -> None:
    for kind in SOURCES:
        bad = _damaged(_source(chain, kind), tmp_path / f"{kind}-{how}", how)
        line = chain.host.fails(7, "backup", "verify", str(bad))
        assert str(bad) in line


@pytest.mark.parametrize("how", ["cut-before-trailer", "flip-in-header-json"])
def test_a_chain_with_a_damaged_link_leaves_nothing(
        chain: Chain, how: str, tmp_path: Path, name: str) -> None:
    host = chain.host
    before = host.names()
    bad = _damaged(chain.files[1], tmp_path / "b2", how)
    try:
        host.fails(7, "import", str(chain.files[0]), str(bad), "--name", name)
        _assert_clean(host, before)
    finally:
        if name in host.names():
            host.run("delete", name)


# -- verify and info ---------------------------------------------------------------------------


def test_verify_lists_the_chain_without_a_pool(chain: Chain, tmp_path: Path) -> None:
    host = chain.host
    files = [str(f) for f in chain.files]
    table = host.run("backup", "verify", *files).stdout.splitlines()
    assert table[0].split()[:3] == ["FILE", "KIND", "CONTAINER"]
    assert [row.split()[1] for row in table[1:]] == ["full", "incremental", "incremental"]

    nowhere = tmp_path / "state"
    nowhere.mkdir()
    proc = subprocess.run(
        [*Host(nowhere).argv("backup", "verify", *files, "--format", "json")],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["kind"] for r in rows] == ["full", "incremental", "incremental"]
    assert [r["file"] for r in rows] == files
    assert all(r["complete"] for r in rows)
    assert not (nowhere / "pool.json").exists() and not (nowhere / "pool").exists()

    # A chain with a gap is not a chain.
    line = Host(nowhere).fails(7, "backup", "verify", files[0], files[2])
    assert files[2] in line


def test_info_shows_what_a_backup_holds(chain: Chain) -> None:
    host = chain.host
    for f in chain.files:
        info = _info(host, f)
        header = _header(f)
        assert info["id"] == header["id"]
        assert info["container"] == chain.name
        assert info["complete"] is True
        assert info["streams"] == len(header["streams"])
        with tarfile.open(f, "r:") as tar:
            t = tar.extractfile("lxcow-backup/trailer.json")
            assert t is not None
            trailer = json.loads(t.read())
        assert info["bytes"] == sum(s["bytes"] for s in trailer["streams"])
    assert _info(chain.host, chain.files[0])["snapshots"] == ["s1"]
    assert _info(chain.host, chain.files[0])["compression"] == "zstd"
    text = host.run("backup", "info", str(chain.files[1])).stdout
    assert "incremental" in text and chain.name in text


# -- plain tools read the format ---------------------------------------------------------------


def _extract_and_receive(host: Host, name: str, tmp_path: Path, compression: str,
                         extract: Callable[[Path, int], str]) -> None:
    """Feed streams pulled out by the shell command ``extract(FILE, index)`` to btrfs receive."""
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    _populate(rootfs)
    host.run("snapshot", "create", name, "s1")
    snap = _manifest(host.lxcpath / name / "snaps" / "s1" / "rootfs")
    (rootfs / "root" / "after").write_text("after s1\n")
    current = _manifest(rootfs)
    backup = tmp_path / "b"
    host.run("export", name, str(backup), "--compression", compression)
    host.run("delete", name)
    header = _header(backup)
    assert [s["snapshot"] for s in header["streams"]] == ["s1", None]
    assert header["streams"][1]["parent_uuid"] == header["streams"][0]["uuid"]

    target = host.pool / f"receive-{name}"
    target.mkdir()
    try:
        for index in (0, 1):     # the second stream is sent against the first
            command = f"{extract(backup, index)} | btrfs -q receive {target}"
            subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, timeout=60)
        got = {s["snapshot"]: target / s["name"] for s in header["streams"]}
        for sub in got.values():
            assert btrfsutil.is_subvolume(sub) and _ro(sub)
        assert _manifest(got["s1"]) == snap
        assert _manifest(got[None]) == current
    finally:
        for sub in target.iterdir():
            btrfsutil.delete_subvolume(sub)
        target.rmdir()


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_extracted_streams_feed_plain_btrfs_receive(
        shared_host: Host, name: str, tmp_path: Path, compression: str) -> None:
    decode = " | zstd -dc" if compression == "zstd" else ""

    def extract(backup: Path, index: int) -> str:
        return f"tar -xOf {backup} --wildcards 'lxcow-backup/streams/{index:04d}/*'{decode}"

    _extract_and_receive(shared_host, name, tmp_path, compression, extract)


def test_the_documented_extraction_command_works(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    lines = [line for line in (REPO / "docs" / "backup-format.md").read_text().splitlines()
             if "zstd -dc" in line and "btrfs receive" in line]
    assert lines, "docs/backup-format.md shows how to pull a stream out"
    documented = lines[0].split("| btrfs receive")[0].strip().rstrip("|").strip()
    assert "FILE" in documented and "0000" in documented

    def extract(backup: Path, index: int) -> str:
        return documented.replace("FILE", str(backup)).replace("0000", f"{index:04d}")

    _extract_and_receive(shared_host, name, tmp_path, "zstd", extract)


def test_portable_tarball_round_trips_on_another_pool(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    rootfs = host.lxcpath / name / "rootfs"
    _populate(rootfs)
    current = _manifest(rootfs, mtimes=False)
    times = {p: os.lstat(rootfs / p).st_mtime_ns for p in ("bin/busybox", "root/odd")}
    tarball = tmp_path / "portable.tar.zst"
    host.run("export", name, str(tarball), "--portable")

    listed = subprocess.run(["tar", "-tf", str(tarball)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert listed[0].removeprefix("./") == "lxcow-portable.json"
    assert "rootfs/root/odd" in {n.removeprefix("./") for n in listed}
    assert all(n.removeprefix("./").startswith(("rootfs", "lxcow-portable.json"))
               for n in listed)

    with new_host() as other:
        assert other.run("import", str(tarball)).stdout == f"{name}\n"
        got = other.lxcpath / name / "rootfs"
        assert btrfsutil.is_subvolume(got) and not _ro(got)
        assert _manifest(got, mtimes=False) == current
        for p, t in times.items():
            assert abs(os.lstat(got / p).st_mtime_ns - t) < 1000, p
        assert os.lstat(got / "root" / "data").st_ino == os.lstat(got / "root" / "data.link").st_ino
        other.run("start", name)
        assert other.run("exec", name, "--", "hostname").stdout.strip() == name
        other.run("stop", "--force", name)
        assert other.leftovers() == []
    host.run("delete", name)


# -- kills, signals, full pools ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bulky(shared_host: Host) -> Iterator[str]:
    """A container holding 256 MiB of random data."""
    name = "bulky"
    shared_host.run("create", "busybox", name)
    _write_random(shared_host.lxcpath / name / "rootfs" / "srv", 256 * MiB)
    btrfsutil.sync(shared_host.pool)
    yield name
    shared_host.run("delete", "--force", name)


def _refused_everywhere(host: Host, directory: Path, fresh: str) -> None:
    for f in directory.iterdir():
        assert f.name.startswith("."), f"only a hidden partial file may stay: {f.name}"
        host.fails(7, "import", str(f), "--name", fresh)
        # Exit 7 with one line is what it should be: see test_damaged_backups_are_refused_by_
        # verify[cut-in-stream], which is the same file shape.
        assert host.run("backup", "verify", str(f), check=False).returncode != 0


@pytest.mark.parametrize("point", ["early", "late"])
def test_kill_during_export_leaves_no_backup_and_no_snapshot(
        shared_host: Host, bulky: str, tmp_path: Path, name: str, point: str) -> None:
    host = shared_host
    before = host.names()
    out = tmp_path / "out"
    out.mkdir()
    target = out / "b.lxcow"

    def partial_size() -> int:
        return sum(f.stat().st_size for f in out.iterdir() if ".partial-" in f.name)

    proc = host.spawn("export", bulky, str(target))
    if point == "early":
        kill_when(proc, lambda: host.leftovers())
    else:
        kill_when(proc, lambda: partial_size() > 32 * MiB)
        assert partial_size() > 32 * MiB, "a killed export cannot remove its partial file"
    assert not target.exists()
    _refused_everywhere(host, out, name)

    host.run("list")
    assert host.leftovers() == []
    assert _stray(host) == []
    assert host.names() == before
    assert not btrfsutil.get_subvolume_read_only(host.lxcpath / bulky / "rootfs")


@pytest.fixture(scope="module")
def bulky_backup(shared_host: Host, bulky: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared_host.run("snapshot", "create", bulky, "s1")
    path = tmp_path_factory.mktemp("bulky") / "bulky.lxcow"
    shared_host.run("export", bulky, str(path), "--compression", "none")
    return path


@pytest.mark.parametrize("delay", [0.0, 1.0, 2.5])
def test_kill_during_import_leaves_nothing_or_the_whole_container(
        shared_host: Host, bulky: str, bulky_backup: Path, name: str, delay: float) -> None:
    host = shared_host
    before = host.names()
    proc = host.spawn("import", str(bulky_backup), "--name", name)
    kill_when(proc, lambda: bool(host.leftovers()) and time.sleep(delay) is None)
    host.run("list")
    assert host.leftovers() == []
    assert _stray(host) == []
    if name in host.names():
        # The kill came after the rename: then everything must be there.
        assert [s["name"] for s in _snaps(host, name)] == ["s1"]
        assert _manifest(host.lxcpath / name / "rootfs" / "srv") == \
            _manifest(host.lxcpath / bulky / "rootfs" / "srv")
        host.run("delete", name)
    assert host.names() == before


def _sigterm_export(host: Host, name: str, out: Path) -> tuple[int, str]:
    proc = host.spawn("export", name, str(out / "b.lxcow"))
    wait_for(lambda: any(".partial-" in f.name and f.stat().st_size > 16 * MiB
                         for f in out.iterdir()) or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, "the export ended before the signal"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_sigterm_during_export_cleans_up(shared_host: Host, bulky: str, tmp_path: Path) -> None:
    host = shared_host
    code, err = _sigterm_export(host, bulky, tmp_path)
    assert code == 130, err
    assert err.startswith("lxcow: error: terminated\n"), err
    assert os.listdir(tmp_path) == [], "no file and no partial file"
    assert host.leftovers() == []
    assert _stray(host) == []


def test_sigterm_during_export_says_one_line(
        shared_host: Host, bulky: str, tmp_path: Path) -> None:
    code, err = _sigterm_export(shared_host, bulky, tmp_path)
    assert code == 130
    assert err.strip().splitlines() == ["lxcow: error: terminated"]


def _fill(host: Host, leave: int) -> None:
    """Write a file into the pool until only about ``leave`` bytes are free."""
    block = os.urandom(4 * MiB)
    with open(host.pool / "filler", "wb") as f:
        while True:
            os.fsync(f.fileno())
            btrfsutil.sync(host.pool)
            st = os.statvfs(host.pool)
            free = st.f_bavail * st.f_frsize
            if free <= leave:
                return
            f.write(block[:free - leave])


def test_import_into_a_full_pool(shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    _write_random(host.lxcpath / name / "rootfs" / "srv", 150 * MiB)
    backup = tmp_path / "big.lxcow"
    host.run("export", name, str(backup), "--compression", "none")
    host.run("delete", name)

    with new_host("300MiB") as small:
        _fill(small, 100 * MiB)
        line = small.fails(8, "import", str(backup))
        assert "no space" in line
        assert small.names() == []
        assert small.leftovers() == []
        assert _stray(small) == []
        with btrfsutil.SubvolumeIterator(small.pool) as it:
            assert [p for p, _ in it] == []

        # Once there is room, the same file imports: the failure left nothing in the way.
        os.unlink(small.pool / "filler")
        btrfsutil.sync(small.pool)
        assert small.run("import", str(backup)).stdout == f"{name}\n"
        assert (small.lxcpath / name / "rootfs" / "srv" / "r000").stat().st_size == 8 * MiB


# -- progress ----------------------------------------------------------------------------------


def test_progress_on_a_terminal_and_silence_in_a_pipe(
        shared_host: Host, name: str, tmp_path: Path) -> None:
    host = shared_host
    host.run("create", "busybox", name)
    _write_random(host.lxcpath / name / "rootfs" / "srv", 4 * MiB, MiB)

    code, drawn = _pty_stderr(host.argv("export", name, str(tmp_path / "a")))
    assert code == 0, drawn
    assert "exporting:" in drawn and "/s" in drawn
    code, drawn = _pty_stderr(host.argv("import", str(tmp_path / "a"), "--name", name + "-t"))
    assert code == 0, drawn
    assert "importing:" in drawn
    code, drawn = _pty_stderr(host.argv("backup", "verify", str(tmp_path / "a")))
    assert code == 0, drawn
    assert "verifying:" in drawn

    proc = host.run("export", name, str(tmp_path / "b"))
    assert proc.stderr == "" and proc.stdout == ""
    proc = host.run("import", str(tmp_path / "b"), "--name", name + "-p")
    assert proc.stderr == ""
    proc = host.run("backup", "verify", str(tmp_path / "b"))
    assert proc.stderr == "" and str(tmp_path / "b") in proc.stdout
    host.run("delete", name, name + "-t", name + "-p")

