"""Benchmark lxcow against LXC's own tools, raw libbtrfsutil and (optionally) LXD.

Run as root from the repository:  .venv/bin/python bench/run.py [--quick] [--with-lxd]

Every table is measured on a fresh Btrfs loop pool of its own; everything the benchmark
makes is removed at the end, also after a failure, Ctrl-C or SIGTERM.  Results go to
bench/results/latest.json (and .md); a full run (no --quick, no --only) also writes the
committed report, docs/benchmark.md and docs/benchmark.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import backup
import fleet
import lxd as lxd_peer
import ops
import report
import scale
import space
import startup
import targets
from harness import BenchError, Table, progress
from hostpool import BenchPool, bench_pool
from isolated import run_isolated
from machine import REPO, code_digest, facts

GIB = 1024**3
RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs"
REQUIRED = ("mkfs.btrfs", "losetup", "mount", "umount", "findmnt", "btrfs", "lxc-create",
            "lxc-copy", "lxc-snapshot", "lxc-start", "lxc-stop", "lxc-destroy", "lxc-ls",
            "rsync", "git")


@dataclasses.dataclass(frozen=True)
class Settings:
    reps: int
    startup_reps: int
    fleet_count: int
    fleet_reps: int
    scale_levels: tuple[int, ...]
    scale_reps: int
    space_count: int
    backup_reps: int
    backup_mib: int
    pool_gib: int = 4


FULL = Settings(reps=20, startup_reps=30, fleet_count=100, fleet_reps=4,
                scale_levels=(0, 10, 100, 1000), scale_reps=7, space_count=100,
                backup_reps=5, backup_mib=200)
QUICK = Settings(reps=4, startup_reps=6, fleet_count=100, fleet_reps=1,
                 scale_levels=(0, 10, 100, 1000), scale_reps=2, space_count=100,
                 backup_reps=2, backup_mib=64)

Section = Callable[[BenchPool, Settings, lxd_peer.Lxd | None], list[Table]]


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so that every pool is torn down."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def _sections() -> dict[str, Section]:
    sections: dict[str, Section] = {
        "startup": lambda pool, s, lxd: startup.run_startup(pool, s.startup_reps),
    }
    for op in ops.OPERATIONS:
        sections[op.id] = _operation(op)
    sections["fleet"] = lambda pool, s, lxd: [
        fleet.run_fleet(pool, s.fleet_count, s.fleet_reps, lxd)]
    sections["scale-list"] = lambda pool, s, lxd: scale.run_list_scale(
        pool, s.scale_levels, s.scale_reps)
    sections["scale-snapshots"] = lambda pool, s, lxd: scale.run_snapshot_scale(
        pool, s.scale_levels, s.scale_reps)
    sections["space"] = lambda pool, s, lxd: space.run_space(pool, s.space_count)
    sections["backup"] = lambda pool, s, lxd: backup.run_backup(pool, s.backup_reps,
                                                                s.backup_mib)
    return sections


def _operation(op: ops.Operation) -> Section:
    return lambda pool, s, lxd: [ops.run_operation(op, pool, s.reps, lxd)]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions (under 3 minutes); does not write docs/")
    p.add_argument("--with-lxd", action="store_true",
                   help="also measure LXD (needs the Debian package lxd; runs a private daemon)")
    p.add_argument("--only", metavar="SECTION,...",
                   help="run only these sections (does not write docs/): "
                   + ", ".join(_sections()))
    return p.parse_args(argv)


def _selected(only: str | None) -> list[str]:
    known = list(_sections())
    if not only:
        return known
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise BenchError(f"unknown section {', '.join(unknown)}; known: {', '.join(known)}")
    return [s for s in known if s in wanted]


def _compile_lxcow() -> None:
    """Byte-compile lxcow first: where Python may not write its caches (as with
    PYTHONDONTWRITEBYTECODE), every CLI run would otherwise compile edited modules again."""
    import compileall

    if not compileall.compile_dir(os.fspath(REPO / "lxcow"), quiet=1):
        raise BenchError("lxcow's sources do not compile")


def _check_host() -> None:
    if os.geteuid() != 0:
        raise BenchError("the benchmark needs root (loop devices, mounts, containers)")
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing programs: {', '.join(missing)} (run ./install.sh)")


@contextlib.contextmanager
def _lxd(wanted: bool) -> Iterator[tuple[lxd_peer.Lxd | None, str]]:
    if not wanted:
        yield None, "not measured (run with --with-lxd)"
        return
    reason = lxd_peer.missing()
    if reason is not None:
        progress(f"{reason}: LXD skipped")
        yield None, f"skipped: {reason}"
        return
    with lxd_peer.lxd_host() as lxd:
        yield lxd, f"{lxd.version}, a private daemon on its own loop pool"


def _tables(section: Section, pool: BenchPool, settings: Settings,
            lxd: lxd_peer.Lxd | None) -> list[dict[str, Any]]:
    return [t.to_json() for t in section(pool, settings, lxd)]


def _run(settings: Settings, names: Sequence[str],
         lxd: lxd_peer.Lxd | None) -> list[dict[str, Any]]:
    """Each section on a pool of its own, measured in a child process (see isolated.py)."""
    sections = _sections()
    tables: list[dict[str, Any]] = []
    for name in names:
        section = sections[name]
        with bench_pool(name, size=settings.pool_gib * GIB) as pool:
            found = run_isolated(functools.partial(_tables, section, pool, settings, lxd))
        for table in found:
            print(report.render_table(table), flush=True)
        tables += found
    return tables


def _command_line(argv: Sequence[str]) -> str:
    python = os.path.relpath(sys.executable, REPO)
    return " ".join([python, "bench/run.py", *argv])


def _write(results: dict[str, Any], docs: bool) -> list[Path]:
    text = report.render(results)
    data = json.dumps(results, indent=1) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    outputs = [(RESULTS / "latest.json", data), (RESULTS / "latest.md", text)]
    if docs:
        outputs += [(DOCS / "benchmark.json", data), (DOCS / "benchmark.md", text)]
    for path, content in outputs:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content)
        os.replace(tmp, path)
    return [path for path, _ in outputs]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    settings = QUICK if args.quick else FULL
    started = time.monotonic()
    try:
        _check_host()
        _compile_lxcow()
        names = _selected(args.only)
        machine, digest = facts(), code_digest()
        with _lxd(args.with_lxd) as (lxd, lxd_status):
            lxd_measured = lxd is not None
            tables = _run(settings, names, lxd)
    except (KeyboardInterrupt, Terminated) as err:
        progress(f"interrupted by {err or 'SIGINT'}; everything the benchmark made is removed")
        return 130
    except BenchError as err:
        progress(f"error: {err}")
        return 1

    evaluated = [t.to_json() for t in targets.evaluate(tables, lxd_measured)]
    results: dict[str, Any] = {
        "command": _command_line(argv),
        "mode": "quick" if args.quick else "full",
        "sections": names,
        "settings": dataclasses.asdict(settings),
        "machine": machine,
        "lxd": lxd_status,
        "lxcow_changed": code_digest() != digest,
        "duration_s": time.monotonic() - started,
        "targets": evaluated,
        "tables": tables,
    }
    print(report.render_targets(evaluated))
    written = _write(results, docs=not args.quick and not args.only)
    progress(f"done in {results['duration_s']:.0f} s; wrote {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
