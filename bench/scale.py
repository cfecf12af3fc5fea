"""Scale: how listing time grows with 0, 10, 100 and 1,000 containers, or snapshots of one.

The containers are made with one fleet ``create`` call per level (the snapshots with the
API, one call each), then every system lists them, interleaved, several times.  LXC's own
listings run on the same lxcpath, so all systems list exactly the same objects.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness import Role, Step, Table, measure, progress, quiet
from hostpool import BenchPool
from systems import IMAGE, Ctx, make_ctx

SNAPPER = "snapper"


def run_list_scale(pool: BenchPool, levels: Sequence[int], reps: int) -> list[Table]:
    tables = []
    ctx = make_ctx(pool, golden=False)
    have = 0
    for level in levels:
        made = _grow_containers(ctx, have, level)
        have = level
        progress(f"listing {level} containers: {reps} repetitions after a warm-up")
        table = Table(f"list-{level}", f"List {level} containers",
                      f"list all containers of a pool holding {level}",
                      measure(_list_steps(ctx), reps), per="listing",
                      group="scale-list", level=level)
        if made:
            table.notes.append(made)
        tables.append(table)
    return tables


def run_snapshot_scale(pool: BenchPool, levels: Sequence[int], reps: int) -> list[Table]:
    tables = []
    ctx = make_ctx(pool, golden=False)
    ctx.lx.create(IMAGE, [SNAPPER])
    have = 0
    for level in levels:
        made = _grow_snapshots(ctx, have, level)
        have = level
        progress(f"listing {level} snapshots: {reps} repetitions after a warm-up")
        table = Table(f"snapshot-list-{level}", f"List {level} snapshots",
                      f"list the snapshots of a container that has {level}",
                      measure(_snapshot_list_steps(ctx), reps), per="listing",
                      group="scale-snapshots", level=level)
        if made:
            table.notes.append(made)
        tables.append(table)
    return tables


def _grow_containers(ctx: Ctx, have: int, level: int) -> str:
    if level <= have:
        return ""
    names = [f"c{j}" for j in range(have, level)]
    start = time.perf_counter()
    ctx.lx.create(IMAGE, names)
    elapsed = time.perf_counter() - start
    return (f"the {len(names)} new containers were made by one API `create` call in "
            f"{elapsed:.2f} s ({elapsed / len(names) * 1000:.2f} ms each)")


def _grow_snapshots(ctx: Ctx, have: int, level: int) -> str:
    if level <= have:
        return ""
    start = time.perf_counter()
    for j in range(have, level):
        ctx.lx.snapshot_create(SNAPPER, f"s{j}")
    elapsed = time.perf_counter() - start
    count = level - have
    return (f"the {count} new snapshots were made by {count} API `snapshot_create` calls in "
            f"{elapsed:.2f} s ({elapsed / count * 1000:.2f} ms each)")


def _list_steps(ctx: Ctx) -> list[Step]:
    lxcpath = ctx.pool.lxcow_lxcpath
    return [
        Step("cli", "lxcow CLI (`lxcow list`)", Role.LXCOW, lambda i: quiet(ctx.cli("list"))),
        Step("api", "lxcow API (`list()`)", Role.LXCOW, lambda i: ctx.lx.list()),
        Step("lxc", "LXC (`lxc-ls --fancy`, names and states)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-ls", "--fancy", lxcpath=lxcpath))),
        Step("lxc-names", "LXC (`lxc-ls`, names only)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-ls", lxcpath=lxcpath))),
    ]


def _snapshot_list_steps(ctx: Ctx) -> list[Step]:
    lxcpath = ctx.pool.lxcow_lxcpath
    return [
        Step("cli", f"lxcow CLI (`lxcow snapshot list {SNAPPER}`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("snapshot", "list", SNAPPER))),
        Step("api", f"lxcow API (`snapshots('{SNAPPER}')`)", Role.LXCOW,
             lambda i: ctx.lx.snapshots(SNAPPER)),
        Step("lxc", "LXC (`lxc-snapshot -L`)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", SNAPPER, "-L", lxcpath=lxcpath))),
    ]
