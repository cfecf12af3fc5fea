"""Start-up cost of the ``lxcow`` command against starting the interpreter it runs on."""

from __future__ import annotations

import os
import sys

from harness import Role, Step, Table, measure, progress, quiet
from hostpool import BenchPool
from systems import IMPORT_BINDINGS, LXCOW_BIN, SYSTEM_PYTHON

from lxcow import Lxcow


def run_startup(pool: BenchPool, reps: int) -> Table:
    progress(f"start-up cost: {reps} repetitions after a warm-up")
    pool.lxcow_source.mkdir()
    Lxcow(pool.state_dir).init(source=os.fspath(pool.lxcow_source))
    cli = [os.fspath(LXCOW_BIN), "--state-dir", os.fspath(pool.state_dir)]
    steps = [
        Step("version", "`lxcow --version`", Role.LXCOW,
             lambda i: quiet([os.fspath(LXCOW_BIN), "--version"])),
        Step("list", "`lxcow list` on an empty pool", Role.LXCOW,
             lambda i: quiet([*cli, "list"])),
        Step("python", "`/usr/bin/python3 -c pass`", Role.REFERENCE,
             lambda i: quiet([SYSTEM_PYTHON, "-c", "pass"])),
        Step("python-bindings", f"`/usr/bin/python3 -c '{IMPORT_BINDINGS}'`",
             Role.REFERENCE, lambda i: quiet([SYSTEM_PYTHON, "-c", IMPORT_BINDINGS])),
        Step("venv-python", "`.venv/bin/python -c pass` (the interpreter lxcow runs on)",
             Role.REFERENCE, lambda i: quiet([sys.executable, "-c", "pass"])),
    ]
    return Table("startup", "Start-up cost of the command",
                 "one whole command, from fork to exit", measure(steps, reps), per="command")
