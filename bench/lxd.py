"""LXD as a peer (``--with-lxd``): a private daemon on its own loop pool, removed afterwards.

The daemon runs with its own ``LXD_DIR`` in the benchmark's temporary directory and a Btrfs
storage pool in a directory of a benchmark pool, so it never touches a host-wide LXD.  Its
one image is the same busybox tree lxcow builds, packed as a unified LXD image.  The
benchmark does not install LXD: without the ``lxd`` and ``lxc`` programs (Debian package
``lxd``) the LXD rows are skipped with a line saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from harness import BenchError, command, progress, quiet
from hostpool import BenchPool, bench_pool, shielded, submounts, unmount_point
from systems import IMAGE, setup_lxcow

READY_TIMEOUT = 120
SHUTDOWN_TIMEOUT = 60
DELETE_ATTEMPTS = 5


class Lxd:
    """The ``lxc`` client of one private LXD daemon."""

    def __init__(self, lxd_dir: Path, version: str) -> None:
        self.lxd_dir = lxd_dir
        self.version = version
        self.env = {"LXD_DIR": os.fspath(lxd_dir)}

    def run(self, *args: str) -> None:
        quiet(["lxc", *args], env=self.env)

    def output(self, *args: str) -> str:
        return command(["lxc", *args], env=self.env)

    def clear(self) -> None:
        """Delete every instance (running ones too), so that the next table starts clean.

        LXD refuses while an instance is busy with another operation (a stop after a failed
        start, say), so each deletion is retried for a few seconds.
        """
        for name in self.output("list", "--format", "csv", "-c", "n").split():
            for attempt in range(DELETE_ATTEMPTS):
                try:
                    self.run("delete", "--force", name)
                    break
                except BenchError:
                    if attempt == DELETE_ATTEMPTS - 1:
                        raise
                    time.sleep(1)


@contextlib.contextmanager
def cleared(lxd: Lxd | None) -> Iterator[None]:
    """Delete LXD's instances after the block; a failure there never hides the block's own."""
    try:
        yield
    except BaseException:
        if lxd is not None:
            with contextlib.suppress(BenchError):
                lxd.clear()
        raise
    if lxd is not None:
        lxd.clear()


def missing() -> str | None:
    """Why LXD cannot be benchmarked here, or None."""
    absent = [p for p in ("lxd", "lxc") if shutil.which(p) is None]
    if absent:
        return f"LXD not installed ({' and '.join(absent)} missing; apt-get install lxd)"
    return None


@contextlib.contextmanager
def lxd_host() -> Iterator[Lxd]:
    """A private LXD daemon with lxcow's busybox tree as its image; all removed on exit."""
    with bench_pool("lxd") as pool:
        rootfs = Path(setup_lxcow(pool).image(IMAGE).path)
        # LXD's containers are unprivileged: their root must be able to reach LXD_DIR.
        pool.root.chmod(0o711)
        lxd_dir = pool.root / "lxd"
        lxd_dir.mkdir(mode=0o711)
        pool.add_lxcpath(lxd_dir / "containers")
        env = {**os.environ, "LXD_DIR": os.fspath(lxd_dir)}
        daemon = _start_daemon(lxd_dir, env)
        try:
            lxd = _initialise(pool, lxd_dir, rootfs)
            yield lxd
        finally:
            with shielded():
                _stop_daemon(daemon, lxd_dir)


def _start_daemon(lxd_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    progress(f"starting a private LXD daemon in {lxd_dir}")
    with open(lxd_dir.parent / "lxd.log", "ab") as log:
        return subprocess.Popen(["lxd", "--logfile", os.fspath(lxd_dir.parent / "lxd.log")],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def _initialise(pool: BenchPool, lxd_dir: Path, rootfs: Path) -> Lxd:
    env = {"LXD_DIR": os.fspath(lxd_dir)}
    command(["lxd", "waitready", f"--timeout={READY_TIMEOUT}"], env=env,
            timeout=READY_TIMEOUT + 10)
    source = pool.mnt / "lxd"
    preseed = {
        "storage_pools": [{"name": "default", "driver": "btrfs",
                           "config": {"source": os.fspath(source)}}],
        "profiles": [{"name": "default", "devices": {
            "root": {"path": "/", "pool": "default", "type": "disk"}}}],
    }
    proc = subprocess.run(["lxd", "init", "--preseed"], input=json.dumps(preseed), text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    if proc.returncode != 0:
        raise BenchError(f"lxd init --preseed: {proc.stderr.strip()}")
    lxd = Lxd(lxd_dir, command(["lxd", "--version"]).strip())
    image = _pack_image(rootfs, pool.root / "lxd-busybox.tar")
    lxd.run("image", "import", os.fspath(image), "--alias", IMAGE)
    return lxd


def _pack_image(rootfs: Path, dest: Path) -> Path:
    """A unified LXD image: ``metadata.yaml`` and ``rootfs/`` in one tarball."""
    meta = dest.with_name("metadata.yaml")
    meta.write_text(
        f"architecture: {os.uname().machine}\n"
        f"creation_date: {int(time.time())}\n"
        "properties:\n  description: busybox (lxcow benchmark)\n  os: busybox\n"
    )
    with tarfile.open(dest, "w") as tar:
        tar.add(meta, arcname="metadata.yaml")
        tar.add(rootfs, arcname="rootfs")
    return dest


def _stop_daemon(daemon: subprocess.Popen[bytes], lxd_dir: Path) -> None:
    env = {"LXD_DIR": os.fspath(lxd_dir)}
    if daemon.poll() is None:
        with contextlib.suppress(BenchError):
            command(["lxd", "shutdown", f"--timeout={SHUTDOWN_TIMEOUT}"], env=env,
                    timeout=SHUTDOWN_TIMEOUT + 10)
    try:
        daemon.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        progress("LXD did not exit; killing it")
        daemon.kill()
        daemon.wait()
    for point in submounts(lxd_dir):
        unmount_point(point)
