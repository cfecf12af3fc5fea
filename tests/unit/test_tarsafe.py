"""Extracting untrusted tar archives into a plain directory, and refusing unsafe ones.

The archives are built in memory; the tree is extracted into pytest's tmp_path, so no Btrfs
and no LXC are involved.  Owners are the test's own numeric ids unless a test needs root.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lxcow import tarsafe
from lxcow.errors import BadData

Member = tuple[tarfile.TarInfo, bytes | None]
MTIME = 1_600_000_000
LIMIT = 1 << 20
IS_ROOT = os.geteuid() == 0


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid, info.gid = os.getuid(), os.getgid()
    return info


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    return info, data


def directory(name: str, mode: int = 0o755) -> Member:
    return _info(name, tarfile.DIRTYPE, mode), None


def symlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def fifo(name: str) -> Member:
    return _info(name, tarfile.FIFOTYPE, 0o600), None


def archive(*members: Member) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def extract(data: bytes, dest: Path, *, limit: int = LIMIT,
            strip_prefix: str = "") -> tarsafe.Extracted:
    return tarsafe.extract(io.BytesIO(data), dest, limit=limit, strip_prefix=strip_prefix)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path / "rootfs"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the tree that no archive may write into."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("untouched")
    return tmp_path / "outside"


def _snapshot(tmp_path: Path, outside: Path) -> tuple[list[str], list[str]]:
    def walk() -> Iterator[str]:
        for top, dirs, files in os.walk(outside):
            yield from (os.path.join(top, n) for n in dirs + files)

    return sorted(os.listdir(tmp_path)), sorted(walk())


def refuse(data: bytes, dest: Path, outside: Path, member: str, *,
           limit: int = LIMIT) -> str:
    """Extract ``data``, which must be refused naming ``member``, and changing nothing outside."""
    before = _snapshot(dest.parent, outside)

    with pytest.raises(BadData) as err:
        extract(data, dest, limit=limit)

    assert err.value.exit_code == 7
    assert repr(member) in str(err.value), str(err.value)
    assert _snapshot(dest.parent, outside) == before
    assert (outside / "keep").read_text() == "untouched"
    return str(err.value)


# -- a normal tree ------------------------------------------------------------------------


NORMAL = archive(
    directory("bin"),
    file("bin/busybox", b"\x7fELF busybox", 0o4755),
    symlink("bin/sh", "busybox"),
    symlink("bin/ls", "/bin/busybox"),
    hardlink("bin/su", "bin/busybox"),
    directory("etc", 0o750),
    file("etc/hostname", b"web1\n", 0o600),
    directory("run"),
    fifo("run/initctl"),
)


def test_extracts_files_with_contents_and_modes(dest: Path) -> None:
    result = extract(NORMAL, dest)

    assert (dest / "etc/hostname").read_bytes() == b"web1\n"
    assert stat.S_IMODE(os.lstat(dest / "etc/hostname").st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(dest / "bin/busybox").st_mode) == 0o4755
    assert result == tarsafe.Extracted(members=9, bytes=len(b"\x7fELF busybox") + 5)


def test_restores_directory_modes_and_times(dest: Path) -> None:
    extract(NORMAL, dest)

    st = os.lstat(dest / "etc")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_mtime == MTIME
    assert os.lstat(dest / "etc/hostname").st_mtime == MTIME


def test_keeps_absolute_symlink_targets(dest: Path) -> None:
    extract(NORMAL, dest)

    assert os.readlink(dest / "bin/ls") == "/bin/busybox"


def test_keeps_relative_symlinks_inside_the_tree(dest: Path) -> None:
    extract(NORMAL, dest)

    assert os.readlink(dest / "bin/sh") == "busybox"
    assert (dest / "bin/sh").read_bytes() == b"\x7fELF busybox"


def test_hard_link_shares_the_earlier_file(dest: Path) -> None:
    extract(NORMAL, dest)

    a, b = os.lstat(dest / "bin/busybox"), os.lstat(dest / "bin/su")
    assert a.st_ino == b.st_ino
    assert a.st_nlink == 2


def test_makes_fifos(dest: Path) -> None:
    extract(NORMAL, dest)

    assert stat.S_ISFIFO(os.lstat(dest / "run/initctl").st_mode)


def test_restores_extended_attributes(dest: Path) -> None:
    info, data = file("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.test": "hello"}
    dinfo, _ = directory("d")
    dinfo.pax_headers = {"SCHILY.xattr.user.dir": "there"}

    extract(archive((info, data), (dinfo, None)), dest)

    assert os.getxattr(dest / "f", "user.test") == b"hello"
    assert os.getxattr(dest / "d", "user.dir") == b"there"


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give files other owners")
def test_restores_numeric_owners(dest: Path) -> None:
    info, data = file("owned", b"x")
    info.uid, info.gid, info.uname, info.gname = 1234, 5678, "root", "root"

    extract(archive((info, data)), dest)

    st = os.lstat(dest / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 5678)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to make device nodes")
def test_makes_device_nodes(dest: Path) -> None:
    info = _info("dev/null", tarfile.CHRTYPE, 0o666)
    info.devmajor, info.devminor = 1, 3

    extract(archive(directory("dev"), (info, None)), dest)

    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)


def test_root_entry_sets_the_mode_of_dest(dest: Path) -> None:
    extract(archive(directory("./", 0o711), file("./a", b"1")), dest)

    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o711
    assert (dest / "a").read_bytes() == b"1"


def test_implicit_parent_directories_are_made(dest: Path) -> None:
    extract(archive(file("usr/lib/deep/file", b"x")), dest)

    assert (dest / "usr/lib/deep/file").read_bytes() == b"x"


def test_strip_prefix_keeps_only_the_rootfs(dest: Path) -> None:
    data = archive(file("metadata.yaml", b"architecture: x86_64\n"), directory("rootfs"),
                   directory("rootfs/etc"), file("rootfs/etc/hostname", b"web1\n"),
                   file("templates/hostname.tpl", b"{{ name }}\n"))

    result = extract(data, dest, strip_prefix="rootfs")

    assert sorted(os.listdir(dest)) == ["etc"]
    assert (dest / "etc/hostname").read_bytes() == b"web1\n"
    assert result.bytes == 5


def test_strip_prefix_keeps_hard_links(dest: Path) -> None:
    data = archive(directory("rootfs"), file("rootfs/busybox", b"x"),
                   hardlink("rootfs/sh", "rootfs/busybox"))

    extract(data, dest, strip_prefix="rootfs")

    assert os.lstat(dest / "sh").st_ino == os.lstat(dest / "busybox").st_ino


def test_a_later_member_replaces_a_hard_link_without_writing_through_it(dest: Path) -> None:
    extract(archive(file("a", b"original"), hardlink("h", "a"), file("h", b"new")), dest)

    assert (dest / "a").read_bytes() == b"original"
    assert (dest / "h").read_bytes() == b"new"


def test_a_later_file_replaces_a_symlink_without_writing_through_it(
        dest: Path, outside: Path) -> None:
    extract(archive(symlink("s", str(outside / "keep")), file("s", b"new")), dest)

    assert (outside / "keep").read_text() == "untouched"
    assert not os.path.islink(dest / "s")
    assert (dest / "s").read_bytes() == b"new"


# -- refusals -----------------------------------------------------------------------------


def test_refuses_an_absolute_member_name(dest: Path, outside: Path) -> None:
    message = refuse(archive(file("/etc/passwd", b"root::0:0::/:/bin/sh\n")), dest, outside,
                     "/etc/passwd")

    assert "absolute" in message


@pytest.mark.parametrize("name", ["a/../../x", "../x", "..", "a/b/../../../outside/keep"])
def test_refuses_dotdot_components(dest: Path, outside: Path, name: str) -> None:
    message = refuse(archive(file(name, b"evil")), dest, outside, name)

    assert "'..'" in message


@pytest.mark.parametrize(("name", "target"), [
    ("link", "../../etc"),
    ("link", ".."),
    ("a/b/link", "../../../outside"),
    ("link", "a/../../outside"),
])
def test_refuses_relative_symlinks_leading_out(dest: Path, outside: Path, name: str,
                                               target: str) -> None:
    message = refuse(archive(symlink(name, target)), dest, outside, name)

    assert "links outside" in message
    assert not os.path.lexists(dest / name)


def test_refuses_a_member_written_through_an_earlier_symlink(dest: Path, outside: Path) -> None:
    data = archive(symlink("d", str(outside)), file("d/evil", b"evil"))

    message = refuse(data, dest, outside, "d/evil")

    assert "symlink" in message
    assert not (outside / "evil").exists()


def test_refuses_a_member_through_a_symlink_deeper_down(dest: Path, outside: Path) -> None:
    data = archive(directory("a"), symlink("a/d", str(outside)), file("a/d/x/y/evil", b"evil"))

    refuse(data, dest, outside, "a/d/x/y/evil")

    assert not (outside / "x").exists()


def test_refuses_a_member_below_a_regular_file(dest: Path, outside: Path) -> None:
    message = refuse(archive(file("f", b"x"), file("f/x", b"y")), dest, outside, "f/x")

    assert "below a file" in message


def test_refuses_a_member_below_a_fifo(dest: Path, outside: Path) -> None:
    refuse(archive(fifo("p"), file("p/x", b"y")), dest, outside, "p/x")


def test_refuses_a_file_replacing_a_directory(dest: Path, outside: Path) -> None:
    refuse(archive(directory("d"), file("d", b"x")), dest, outside, "d")

    assert os.path.isdir(dest / "d")


@pytest.mark.parametrize("target", ["nothere", "later"])
def test_refuses_a_hard_link_to_a_name_not_yet_in_the_archive(dest: Path, outside: Path,
                                                               target: str) -> None:
    data = archive(file("a", b"x"), hardlink("h", target), file("later", b"y"))

    message = refuse(data, dest, outside, "h")

    assert "hard link" in message
    assert not os.path.lexists(dest / "h")


@pytest.mark.parametrize("earlier", [directory("d"), symlink("d", "a"), fifo("d")])
def test_refuses_a_hard_link_to_anything_but_a_file(dest: Path, outside: Path,
                                                    earlier: Member) -> None:
    refuse(archive(file("a", b"x"), earlier, hardlink("h", "d")), dest, outside, "h")


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside/keep"])
def test_refuses_a_hard_link_out_of_the_tree(dest: Path, outside: Path, target: str) -> None:
    links_before = os.lstat(outside / "keep").st_nlink, os.lstat("/etc/passwd").st_nlink

    with pytest.raises(BadData) as err:
        extract(archive(file("a", b"x"), hardlink("h", target)), dest)

    assert err.value.exit_code == 7
    assert not os.path.lexists(dest / "h")
    assert (os.lstat(outside / "keep").st_nlink, os.lstat("/etc/passwd").st_nlink) == links_before


def test_a_hard_link_out_of_the_tree_is_named_in_the_message(dest: Path, outside: Path) -> None:
    refuse(archive(file("a", b"x"), hardlink("h", "/etc/passwd")), dest, outside, "h")


def test_refuses_a_member_larger_than_the_limit(dest: Path, outside: Path) -> None:
    message = refuse(archive(file("big", b"x" * 101)), dest, outside, "big", limit=100)

    assert "101 bytes" in message
    assert not (dest / "big").exists()


def test_refuses_members_adding_up_to_more_than_the_limit(dest: Path, outside: Path) -> None:
    data = archive(file("one", b"1" * 60), file("two", b"2" * 60))

    refuse(data, dest, outside, "two", limit=100)

    assert not (dest / "two").exists()


def test_a_member_of_exactly_the_limit_fits(dest: Path) -> None:
    assert extract(archive(file("f", b"x" * 100)), dest, limit=100).bytes == 100


def test_refuses_unknown_member_types(dest: Path, outside: Path) -> None:
    info = _info("volume", b"V", 0o644)

    message = refuse(archive((info, None)), dest, outside, "volume")

    assert "unsupported type" in message


def test_refuses_an_archive_truncated_inside_a_file(dest: Path, outside: Path) -> None:
    data = archive(file("big", os.urandom(8192)), file("after", b"x"))

    with pytest.raises(BadData, match="damaged or truncated") as err:
        extract(data[:4096], dest)

    assert err.value.exit_code == 7
    assert not (dest / "after").exists()


def test_refuses_an_archive_truncated_between_members(dest: Path) -> None:
    data = archive(file("a", b"x" * 512), file("b", b"y" * 512))

    with pytest.raises(BadData):
        extract(data[:1024], dest)


def test_refuses_a_corrupt_header_after_the_first_member(dest: Path) -> None:
    data = bytearray(archive(file("a", b"x" * 512), file("b", b"y"), file("c", b"z")))
    data[1024 + 148:1024 + 156] = b"0000000\0"

    with pytest.raises(BadData):
        extract(bytes(data), dest)


@pytest.mark.parametrize("data", [b"garbage " * 200, b"\0" * 100, b"x"])
def test_refuses_garbage(dest: Path, data: bytes) -> None:
    with pytest.raises(BadData) as err:
        extract(data, dest)

    assert err.value.exit_code == 7
    assert os.listdir(dest) == []


def test_refuses_no_bytes_at_all(dest: Path) -> None:
    with pytest.raises(BadData):
        extract(b"", dest)


def test_refuses_an_archive_without_members(dest: Path) -> None:
    with pytest.raises(BadData, match="no files"):
        extract(archive(), dest)


def test_refuses_an_archive_with_nothing_under_the_prefix(dest: Path) -> None:
    with pytest.raises(BadData, match="no files"):
        extract(archive(file("metadata.yaml", b"x")), dest, strip_prefix="rootfs")
