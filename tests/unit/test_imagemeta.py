"""Filtering an image's untrusted LXC config, and reading image metadata tarballs."""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import pytest

from lxcow import imagemeta
from lxcow.errors import BadData
from lxcow.imagemeta import TEMPLATE_DIR, filter_config

COMMON = f"{TEMPLATE_DIR}/common.conf"
needs_templates = pytest.mark.skipif(not os.path.isfile(COMMON),
                                     reason=f"needs LXC's shipped {COMMON}")


def test_safe_keys_are_kept() -> None:
    text = ("lxc.arch = x86_64\nlxc.signal.halt = SIGRTMIN+3\nlxc.signal.reboot = SIGTERM\n"
            "lxc.signal.stop = SIGKILL\nlxc.tty.max = 4\nlxc.pty.max = 1024\nlxc.autodev = 1\n")

    assert filter_config(text) == text


def test_lines_are_normalised() -> None:
    assert filter_config("  lxc.arch=amd64  \n") == "lxc.arch = amd64\n"


def test_blank_comment_and_malformed_lines_are_dropped() -> None:
    assert filter_config("\n# lxc.arch = x86_64\nlxc.arch\n   \n") == ""


@pytest.mark.parametrize("line", [
    "lxc.hook.pre-start = /bin/evil",
    "lxc.hook.mount = /bin/evil",
    "lxc.hook.version = 1",
    "lxc.mount.entry = /etc etc none bind 0 0",
    "lxc.mount.auto = proc:rw sys:rw",
    "lxc.mount.fstab = /etc/fstab",
    "lxc.apparmor.profile = unconfined",
    "lxc.cap.keep = sys_admin",
    "lxc.rootfs.path = dir:/",
    "lxc.cgroup.devices.allow = a",
    "lxc.cgroup2.devices.allow = a",
    "lxc.idmap = u 0 0 65536",
    "lxc.init.cmd = /bin/evil",
    "lxc.execute.cmd = /bin/evil",
    "lxc.net.0.script.up = /bin/evil",
    "lxc.seccomp.profile = /dev/null",
    "lxc.signal.halt.extra = x",
    "LXC.ARCH = x86_64",
])
def test_unsafe_keys_are_dropped(line: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lxcow.imagemeta"):
        kept = filter_config(f"lxc.arch = x86_64\n{line}\n")

    assert kept == "lxc.arch = x86_64\n"
    assert line in caplog.text


@needs_templates
def test_template_config_include_is_kept_and_expanded() -> None:
    kept = filter_config("lxc.include = LXC_TEMPLATE_CONFIG/common.conf\n")

    assert kept == f"lxc.include = {COMMON}\n"


@needs_templates
def test_absolute_include_of_a_shipped_file_is_kept() -> None:
    assert filter_config(f"lxc.include = {COMMON}\n") == f"lxc.include = {COMMON}\n"


@pytest.mark.parametrize("value", [
    "/etc/passwd",
    "/etc/lxc/default.conf",
    "LXC_TEMPLATE_CONFIG/../../../../etc/passwd",
    f"{TEMPLATE_DIR}/../../../../etc/passwd",
    "LXC_TEMPLATE_CONFIG/no-such-file.conf",
    "LXC_TEMPLATE_CONFIG",
    TEMPLATE_DIR,
    f"{TEMPLATE_DIR}x/common.conf",
    "common.conf",
    "",
])
def test_other_includes_are_dropped(value: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert filter_config(f"lxc.arch = x86_64\nlxc.include = {value}\n") == "lxc.arch = x86_64\n"


def test_include_through_a_symlink_out_of_the_template_dir_is_dropped(tmp_path: Path) -> None:
    link = tmp_path / "common.conf"
    link.symlink_to("/etc/passwd")

    assert filter_config(f"lxc.include = {link}\n") == ""


@needs_templates
def test_relative_include_is_dropped_whatever_the_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(TEMPLATE_DIR)

    assert filter_config("lxc.include = common.conf\n") == ""


# -- metadata tarballs --------------------------------------------------------------------


def add(tf: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tf.addfile(info)
        return
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            add(tf, name, data)
    return path


METADATA = b"architecture: x86_64\nproperties:\n  description: Debian bookworm\n"


def test_read_metadata_and_filtered_config(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "meta.tar", [
        ("metadata.yaml", METADATA),
        ("config", b"lxc.arch = x86_64\nlxc.hook.pre-start = /bin/evil\n"),
        ("templates/", None),
    ])

    meta = imagemeta.read(path)

    assert meta.architecture == "x86_64"
    assert meta.description == "Debian bookworm"
    assert meta.lxc_config == "lxc.arch = x86_64\n"


def test_read_stops_at_the_rootfs(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "unified.tar", [
        ("metadata.yaml", METADATA),
        ("rootfs/", None),
        ("rootfs/config", b"lxc.arch = evil\n"),
        ("config", b"lxc.arch = late\n"),
    ])

    assert imagemeta.read(path).lxc_config == ""
    assert imagemeta.is_unified(path)


def test_a_split_metadata_tarball_is_not_unified(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "meta.tar", [("config", b""), ("metadata.yaml", METADATA)])

    assert not imagemeta.is_unified(path)


@pytest.mark.parametrize("body", [b"- a list\n", b"key: [unclosed\n"])
def test_read_refuses_bad_metadata_yaml(tmp_path: Path, body: bytes) -> None:
    path = write_tar(tmp_path / "meta.tar", [("metadata.yaml", body)])

    with pytest.raises(BadData, match="metadata.yaml") as err:
        imagemeta.read(path)

    assert err.value.exit_code == 7


def test_read_refuses_a_huge_metadata_file(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "meta.tar", [("config", b"#" * (imagemeta.MAX_META_FILE + 1))])

    with pytest.raises(BadData, match="too large"):
        imagemeta.read(path)


def test_read_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "meta.tar"
    path.write_bytes(b"not a tarball at all" * 50)

    with pytest.raises(BadData):
        imagemeta.read(path)
    with pytest.raises(BadData):
        imagemeta.is_unified(path)
