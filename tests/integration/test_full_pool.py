"""A full pool: a clear error, exit status 8, and nothing half-made left behind."""

from __future__ import annotations

import json
import os
import subprocess

import btrfsutil
import pytest

from tests.conftest import new_host

pytestmark = pytest.mark.integration


def test_building_an_image_on_a_full_pool_fails_cleanly() -> None:
    with new_host("300MiB") as host:
        filler = host.pool / "filler"
        with open(filler, "wb") as f:
            chunk = os.urandom(1 << 20)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
        btrfsutil.sync(host.pool)

        line = host.fails(8, "image", "build", "busybox", "--alias", "busybox")
        assert "no space" in line
        assert json.loads(host.run("image", "list", "--format", "json").stdout) == []
        assert host.leftovers() == []
        assert not os.listdir(host.pool / "images")

        os.unlink(filler)
        btrfsutil.sync(host.pool)
        subprocess.run(["sync"], check=True)
        host.run("image", "build", "busybox", "--alias", "busybox")
        host.run("launch", "busybox", "after-full")
        host.run("delete", "--force", "after-full")
