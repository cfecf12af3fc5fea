"""Many creations in a row: a loop of single commands against one fleet command.

Each repetition makes ``count`` containers from the cached image with every system and
removes them again (untimed).  The warm-up round makes only a few.  The table gives the time
per container: the round's total divided by ``count``.
"""

from __future__ import annotations

from collections.abc import Callable

from harness import Hook, Role, Step, Table, measure, progress, quiet
from hostpool import BenchPool
from lxd import Lxd, cleared
from systems import GOLDEN, IMAGE, Ctx, make_ctx, raw_delete, raw_snapshot

WARMUP_COUNT = 5

Names = Callable[[int], list[str]]


def run_fleet(pool: BenchPool, count: int, reps: int, lxd: Lxd | None) -> Table:
    progress(f"{count} creations in a row: {reps} repetitions after a warm-up")
    ctx = make_ctx(pool)
    with cleared(lxd):
        outcomes = measure(_steps(ctx, lxd, count), reps)
    for outcome in outcomes:
        outcome.samples = [s / count for s in outcome.samples]
    return Table("fleet", f"{count} creations in a row",
                 f"{count} containers from the cached image, each repetition's total "
                 f"divided by {count}", outcomes, per="container",
                 notes=[f"warm-up round: {WARMUP_COUNT} containers per system"])


def _names(key: str, count: int) -> Names:
    def names(rnd: int) -> list[str]:
        n = WARMUP_COUNT if rnd == 0 else count
        return [f"{key}{rnd}-{j}" for j in range(n)]

    return names


def _each(action: Callable[[str], object], names: Names) -> Hook:
    def run(rnd: int) -> None:
        for name in names(rnd):
            action(name)

    return run


def _steps(ctx: Ctx, lxd: Lxd | None, count: int) -> list[Step]:
    cli_loop, cli_fleet, api_loop, api_fleet, lxc, raw = (
        _names(k, count) for k in ("cl", "cf", "al", "af", "lx", "rw"))
    delete = ctx.lx.delete
    steps = [
        Step("cli-loop", f"lxcow CLI loop ({count} x `lxcow create {IMAGE} NAME`)",
             Role.LXCOW, _each(lambda n: quiet(ctx.cli("create", IMAGE, n)), cli_loop),
             teardown=_each(delete, cli_loop)),
        Step("cli-fleet", f"lxcow CLI fleet (one `lxcow create {IMAGE} NAME1 ... NAME{count}`)",
             Role.LXCOW, lambda i: quiet(ctx.cli("create", IMAGE, *cli_fleet(i))),
             teardown=_each(delete, cli_fleet)),
        Step("api-loop", f"lxcow API loop ({count} x `create('{IMAGE}', [NAME])`)", Role.LXCOW,
             _each(lambda n: ctx.lx.create(IMAGE, [n]), api_loop),
             teardown=_each(delete, api_loop)),
        Step("api-fleet", f"lxcow API fleet (one `create('{IMAGE}', NAMES)`)", Role.LXCOW,
             lambda i: ctx.lx.create(IMAGE, api_fleet(i)),
             teardown=_each(delete, api_fleet)),
        Step("lxc-loop", f"LXC loop ({count} x `lxc-copy -s -B btrfs`)", Role.PEER,
             _each(lambda n: ctx.lxc_copy(GOLDEN, n), lxc),
             teardown=_each(lambda n: quiet(ctx.lxc("lxc-destroy", "-n", n)), lxc)),
        Step("raw-loop", f"libbtrfsutil loop ({count} x `create_snapshot`, floor)", Role.FLOOR,
             _each(lambda n: raw_snapshot(ctx.image_rootfs, ctx.raw_path(n)), raw),
             teardown=_each(lambda n: raw_delete(ctx.raw_path(n)), raw)),
    ]
    if lxd is not None:
        ld = _names("ld", count)
        steps.append(Step("lxd-loop", f"LXD loop ({count} x `lxc init {IMAGE} NAME`)",
                          Role.PEER, _each(lambda n: lxd.run("init", IMAGE, n), ld),
                          teardown=_each(lambda n: lxd.run("delete", n), ld)))
    return steps
