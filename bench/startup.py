"""Start-up cost of the ``lxcow`` command against starting the interpreter it runs on, and
where that time goes: the standard modules lxcow's command line uses, lxcow's own modules,
and the slowest imports as ``python -X importtime`` reports them."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from harness import Outcome, Role, Step, Table, measure, progress, quiet
from hostpool import BenchPool
from systems import IMPORT_BINDINGS, LXCOW_BIN, SYSTEM_PYTHON

from lxcow import Lxcow

# The standard modules on the path of a simple lxcow command, and lxcow's own.
STDLIB_IMPORTS = "import argparse, dataclasses, pathlib, json, enum, signal, fcntl, _lxc, btrfsutil"
LXCOW_IMPORTS = "import lxcow.cli, lxcow.api, _lxc, btrfsutil"
SLOWEST = 8


def run_startup(pool: BenchPool, reps: int) -> list[Table]:
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
        Step("stdlib", f"`.venv/bin/python -c '{STDLIB_IMPORTS}'` (the standard modules "
             "a command uses)", Role.REFERENCE,
             lambda i: quiet([sys.executable, "-c", STDLIB_IMPORTS])),
        Step("imports", f"`.venv/bin/python -c '{LXCOW_IMPORTS}'` (all a command imports)",
             Role.REFERENCE, lambda i: quiet([sys.executable, "-c", LXCOW_IMPORTS])),
    ]
    startup = Table("startup", "Start-up cost of the command",
                    "one whole command, from fork to exit", measure(steps, reps),
                    per="command")
    return [startup, _slowest_imports(max(3, reps // 5))]


def _slowest_imports(runs: int) -> Table:
    """The modules with the largest cumulative import time in `lxcow list`'s imports."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", LXCOW_IMPORTS],
                              capture_output=True, text=True, check=True)
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue
            name = parts[2].strip()
            samples.setdefault(name, []).append(int(parts[1]) / 1e6)
    top = sorted(samples, key=lambda n: statistics.median(samples[n]), reverse=True)[:SLOWEST]
    rows = [Outcome(name, f"`import {name}` (with what it imports)",
                    Role.REFERENCE,
                    samples[name]) for name in top]
    return Table("startup-imports", "The slowest imports of an lxcow command",
                 "cumulative import time of a module and everything it imports, from "
                 "`python -X importtime` (which itself slows imports down)", rows,
                 per="import", notes=[f"{runs} runs of `.venv/bin/python -X importtime -c "
                                      f"'{LXCOW_IMPORTS}'`"])
