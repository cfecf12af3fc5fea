"""Fixtures shared by the unit and integration tests.

Integration tests run against the real kernel: each pool is a sparse loop file formatted as
Btrfs and mounted below a unique temporary directory, and the containers are real LXC
containers made from a busybox image.  Teardown kills the pool's containers, unmounts the
pool and detaches its loop device even when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    tools = {t: bool(shutil.which(t)) for t in ("mkfs.btrfs", "lxc-start", "losetup")}
    return [f"lxcow integration: root={IS_ROOT} tools={tools} kernel={os.uname().release}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        missing = [t for t in ("mkfs.btrfs", "lxc-start", "losetup") if not shutil.which(t)]
        if missing:
            raise pytest.UsageError(f"integration tests need {missing}: run ./install.sh --test")
        return
    skip = pytest.mark.skip(reason="needs root for loop devices, Btrfs and LXC")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


class Host:
    """One lxcow state directory, driven through the real command line."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @property
    def pool(self) -> Path:
        return self.state_dir / "pool"

    @property
    def lxcpath(self) -> Path:
        return self.pool / "containers"

    @property
    def tmp(self) -> Path:
        return self.pool / ".lxcow" / "tmp"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lxcow", "--state-dir", str(self.state_dir), *args]

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True,
                              timeout=timeout, input=input, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"lxcow {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def fails(self, code: int, *args: str) -> str:
        """Run a command that must fail with ``code`` and one line on stderr; return it."""
        proc = self.run(*args, check=False)
        assert proc.returncode == code, (proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lxcow: error: "), proc.stderr
        return lines[0]

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)

    def names(self) -> list[str]:
        return sorted(e for e in os.listdir(self.lxcpath) if not e.startswith("."))

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.tmp)) if self.tmp.exists() else []

    def lxc(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([tool, "-P", str(self.lxcpath), *args], capture_output=True,
                              text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {args} exited {proc.returncode}: {proc.stderr}")
        return proc


def _loop_devices_of(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(path), "-O", "NAME", "-n"], capture_output=True,
                         text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _kill_containers_below(root: Path) -> None:
    """Stop every LXC container whose lxcpath lies below ``root``, found by its monitor."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        parts = cmdline.split("\0")
        if not parts or not parts[0].startswith("[lxc monitor]"):
            continue
        words = parts[0].split()
        if len(words) >= 4 and words[2].startswith(str(root)):
            subprocess.run(["lxc-stop", "-k", "-P", words[2], "-n", words[3]],
                           capture_output=True, timeout=60)


def teardown_host(state_dir: Path) -> None:
    """Kill containers, unmount everything below ``state_dir``, detach its loop devices."""
    _kill_containers_below(state_dir)
    try:
        pool_root = Path(json.loads((state_dir / "pool.json").read_text())["mountpoint"])
        _kill_containers_below(pool_root)
    except (OSError, ValueError, KeyError):
        pass
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mnt in sorted((m for m in mounts if m.startswith(str(state_dir))), reverse=True):
        for _ in range(50):
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    for img in state_dir.rglob("*.img"):
        for dev in _loop_devices_of(img):
            subprocess.run(["losetup", "-d", dev], capture_output=True)
    shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def new_host(size: str = "2GiB", *, init: bool = True) -> Iterator[Host]:
    state_dir = Path(tempfile.mkdtemp(prefix="lxcow-test-"))
    try:
        host = Host(state_dir)
        if init:
            host.run("init", "--size", size)
        yield host
    finally:
        teardown_host(state_dir)


@pytest.fixture(scope="session")
def shared_host() -> Iterator[Host]:
    """One pool with a busybox image, shared by tests that use unique container names."""
    if not IS_ROOT:
        pytest.skip("needs root")
    with new_host() as host:
        host.run("image", "build", "busybox", "--alias", "busybox")
        yield host


@pytest.fixture
def host() -> Iterator[Host]:
    """A pool of its own with a busybox image, for tests that look at the whole pool."""
    if not IS_ROOT:
        pytest.skip("needs root")
    with new_host() as h:
        h.run("image", "build", "busybox", "--alias", "busybox")
        yield h


@pytest.fixture
def name() -> str:
    """A unique container name."""
    return "t-" + uuid.uuid4().hex[:10]


def assert_whole(host: Host, name: str) -> None:
    """A container that is all there: config naming its rootfs, a writable rootfs subvolume
    with the image's files, and lxcow's metadata."""
    import btrfsutil

    d = host.lxcpath / name
    assert (d / "config").is_file()
    assert f"lxc.rootfs.path = btrfs:{d / 'rootfs'}" in (d / "config").read_text()
    assert btrfsutil.is_subvolume(d / "rootfs")
    assert not btrfsutil.get_subvolume_read_only(d / "rootfs")
    assert (d / "rootfs" / "bin" / "busybox").is_file()
    assert json.loads((d / "lxcow.json").read_text())["created"]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.002):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def kill_when(proc: subprocess.Popen[str], predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL ``proc`` as soon as ``predicate()`` holds (or fail if it never does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            raise AssertionError(f"command finished before the kill point: {proc.returncode}")
        time.sleep(0.0005)
    proc.kill()
    raise AssertionError("kill point never reached")
