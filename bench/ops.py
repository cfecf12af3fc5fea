"""Single operations: create, clone, delete, snapshot, restore, snapshot delete, start, stop.

Each operation gets its own pool.  Every system works on objects of its own kind on that one
filesystem: lxcow's containers in lxcow's lxcpath, LXC's in an lxcpath beside it (made from
a golden ``lxc-create -t busybox -B btrfs`` container), the raw floor on the container's own
subvolumes.  Start and stop act on one container made by lxcow, so that every system boots
the same root filesystem with the same config; one more row starts and kills a container of
LXC's own busybox template, whose config differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from harness import Role, Step, Table, measure, progress, quiet
from hostpool import BenchPool
from lxd import Lxd, cleared
from systems import (
    GOLDEN,
    IMAGE,
    Ctx,
    config_items,
    interpreter_reference,
    liblxc_ensure_stopped,
    liblxc_kill,
    liblxc_start,
    lxc_template,
    make_ctx,
    raw_delete,
    raw_snapshot,
)

BASE = "base"
LXC_BASE = "lxbase"
LXD_BASE = "lxdbase"
RUNNER = "runner"
LXC_SNAP = "snap0"
SNAP = "s0"

Builder = Callable[[Ctx, Lxd | None], list[Step]]


@dataclasses.dataclass(frozen=True)
class Operation:
    id: str
    title: str
    what: str
    prepare: Callable[[Ctx, Lxd | None], None]
    build: Builder
    notes: Callable[[Ctx], list[str]] | None = None


def run_operation(op: Operation, pool: BenchPool, reps: int, lxd: Lxd | None) -> Table:
    progress(f"{op.title}: {reps} repetitions after a warm-up")
    ctx = make_ctx(pool)
    with cleared(lxd):
        op.prepare(ctx, lxd)
        outcomes = measure(op.build(ctx, lxd), reps)
        notes = op.notes(ctx) if op.notes else []
    return Table(op.id, op.title, op.what, outcomes, notes=notes)


def _name(key: str) -> Callable[[int], str]:
    return lambda i: f"{key}-{i}"


# -- preparation ----------------------------------------------------------------------------


def _bases(ctx: Ctx, lxd: Lxd | None) -> None:
    """A stopped container of each kind to clone and snapshot."""
    ctx.lx.create(IMAGE, [BASE])
    ctx.lxc_copy(GOLDEN, LXC_BASE)
    if lxd is not None:
        lxd.run("init", IMAGE, LXD_BASE)


def _bases_with_snapshots(ctx: Ctx, lxd: Lxd | None) -> None:
    _bases(ctx, lxd)
    ctx.lx.snapshot_create(BASE, SNAP)
    quiet(ctx.lxc("lxc-snapshot", "-n", LXC_BASE))
    if lxd is not None:
        lxd.run("snapshot", LXD_BASE, SNAP)


def _runners(ctx: Ctx, lxd: Lxd | None) -> None:
    """A running container of each kind."""
    ctx.lx.launch(IMAGE, [RUNNER])
    ctx.lxc_copy(GOLDEN, LXC_BASE)
    quiet(ctx.lxc("lxc-start", "-n", LXC_BASE))
    if lxd is not None:
        lxd.run("launch", IMAGE, LXD_BASE)


def _stopped_runner(ctx: Ctx, lxd: Lxd | None) -> None:
    ctx.lx.create(IMAGE, [RUNNER])
    ctx.lxc_copy(GOLDEN, LXC_BASE)
    if lxd is not None:
        lxd.run("init", IMAGE, LXD_BASE)


# -- create, clone, delete ------------------------------------------------------------------


def _create_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    cli, api, lxc, tpl, raw = (_name(k) for k in ("cli", "api", "lxc", "tpl", "raw"))
    steps = [
        Step("cli", f"lxcow CLI (`lxcow create {IMAGE} NAME`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("create", IMAGE, cli(i))),
             teardown=lambda i: ctx.lx.delete(cli(i))),
        Step("api", f"lxcow API (`create('{IMAGE}', [NAME])`)", Role.LXCOW,
             lambda i: ctx.lx.create(IMAGE, [api(i)]),
             teardown=lambda i: ctx.lx.delete(api(i))),
        Step("lxc", "LXC (`lxc-copy -s -B btrfs` of a golden container)", Role.PEER,
             lambda i: ctx.lxc_copy(GOLDEN, lxc(i)),
             teardown=lambda i: quiet(ctx.lxc("lxc-destroy", "-n", lxc(i)))),
        Step("lxc-template", "LXC (`lxc-create -t busybox -B btrfs`, runs the template)",
             Role.PEER, lambda i: lxc_template(ctx, tpl(i)),
             teardown=lambda i: quiet(ctx.lxc("lxc-destroy", "-n", tpl(i)))),
        Step("raw", "libbtrfsutil `create_snapshot` of the image (floor)", Role.FLOOR,
             lambda i: raw_snapshot(ctx.image_rootfs, ctx.raw_path(raw(i))),
             teardown=lambda i: raw_delete(ctx.raw_path(raw(i)))),
        interpreter_reference(),
    ]
    if lxd is not None:
        name = _name("lxd")
        steps.append(Step("lxd", f"LXD (`lxc init {IMAGE} NAME`)", Role.PEER,
                          lambda i: lxd.run("init", IMAGE, name(i)),
                          teardown=lambda i: lxd.run("delete", name(i))))
    return steps


def _clone_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    cli, api, lxc, raw = (_name(k) for k in ("cli", "api", "lxc", "raw"))
    steps = [
        Step("cli", f"lxcow CLI (`lxcow copy {BASE} NEW`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("copy", BASE, cli(i))),
             teardown=lambda i: ctx.lx.delete(cli(i))),
        Step("api", f"lxcow API (`copy('{BASE}', NEW)`)", Role.LXCOW,
             lambda i: ctx.lx.copy(BASE, api(i)),
             teardown=lambda i: ctx.lx.delete(api(i))),
        Step("lxc", "LXC (`lxc-copy -s -B btrfs`)", Role.PEER,
             lambda i: ctx.lxc_copy(LXC_BASE, lxc(i)),
             teardown=lambda i: quiet(ctx.lxc("lxc-destroy", "-n", lxc(i)))),
        Step("raw", "libbtrfsutil `create_snapshot` of the rootfs (floor)", Role.FLOOR,
             lambda i: raw_snapshot(ctx.rootfs(BASE), ctx.raw_path(raw(i))),
             teardown=lambda i: raw_delete(ctx.raw_path(raw(i)))),
        interpreter_reference(),
    ]
    if lxd is not None:
        name = _name("lxd")
        steps.append(Step("lxd", f"LXD (`lxc copy {LXD_BASE} NEW`)", Role.PEER,
                          lambda i: lxd.run("copy", LXD_BASE, name(i)),
                          teardown=lambda i: lxd.run("delete", name(i))))
    return steps


def _delete_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    cli, api, lxc, raw = (_name(k) for k in ("cli", "api", "lxc", "raw"))
    steps = [
        Step("cli", "lxcow CLI (`lxcow delete NAME`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("delete", cli(i))),
             setup=lambda i: ctx.lx.create(IMAGE, [cli(i)])),
        Step("api", "lxcow API (`delete(NAME)`)", Role.LXCOW,
             lambda i: ctx.lx.delete(api(i)),
             setup=lambda i: ctx.lx.create(IMAGE, [api(i)])),
        Step("lxc", "LXC (`lxc-destroy`)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-destroy", "-n", lxc(i))),
             setup=lambda i: ctx.lxc_copy(GOLDEN, lxc(i))),
        Step("raw", "libbtrfsutil `delete_subvolume` (floor)", Role.FLOOR,
             lambda i: raw_delete(ctx.raw_path(raw(i))),
             setup=lambda i: raw_snapshot(ctx.image_rootfs, ctx.raw_path(raw(i)))),
        interpreter_reference(),
    ]
    if lxd is not None:
        name = _name("lxd")
        steps.append(Step("lxd", "LXD (`lxc delete NAME`)", Role.PEER,
                          lambda i: lxd.run("delete", name(i)),
                          setup=lambda i: lxd.run("init", IMAGE, name(i))))
    return steps


# -- snapshots ------------------------------------------------------------------------------


def _snapshot_steps(container: str, lxc_container: str, *,
                    reference: bool) -> Builder:
    def build(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
        cli, api, raw = (_name(k) for k in ("cli", "api", "raw"))
        steps = [
            Step("cli", f"lxcow CLI (`lxcow snapshot create {container} SNAP`)", Role.LXCOW,
                 lambda i: quiet(ctx.cli("snapshot", "create", container, cli(i))),
                 teardown=lambda i: ctx.lx.snapshot_delete(container, cli(i))),
            Step("api", f"lxcow API (`snapshot_create('{container}', SNAP)`)", Role.LXCOW,
                 lambda i: ctx.lx.snapshot_create(container, api(i)),
                 teardown=lambda i: ctx.lx.snapshot_delete(container, api(i))),
            Step("lxc", "LXC (`lxc-snapshot`)", Role.PEER,
                 lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", lxc_container)),
                 teardown=lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", lxc_container, "-d",
                                                  LXC_SNAP))),
            Step("raw", "libbtrfsutil read-only `create_snapshot` (floor)", Role.FLOOR,
                 lambda i: raw_snapshot(ctx.rootfs(container), ctx.raw_path(raw(i)),
                                        readonly=True),
                 teardown=lambda i: raw_delete(ctx.raw_path(raw(i)))),
        ]
        if reference:
            steps.append(interpreter_reference())
        if lxd is not None:
            name = _name("lxd")
            steps.append(Step("lxd", f"LXD (`lxc snapshot {LXD_BASE} SNAP`)", Role.PEER,
                              lambda i: lxd.run("snapshot", LXD_BASE, name(i)),
                              teardown=lambda i: lxd.run("delete", f"{LXD_BASE}/{name(i)}")))
        return steps

    return build


def _restore_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    raw = _name("raw")
    snap_rootfs = ctx.pool.lxcow_lxcpath / BASE / "snaps" / SNAP / "rootfs"
    steps = [
        Step("cli", f"lxcow CLI (`lxcow snapshot restore {BASE} {SNAP}`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("snapshot", "restore", BASE, SNAP))),
        Step("api", f"lxcow API (`snapshot_restore('{BASE}', '{SNAP}')`)", Role.LXCOW,
             lambda i: ctx.lx.snapshot_restore(BASE, SNAP)),
        Step("lxc", f"LXC (`lxc-snapshot -r {LXC_SNAP}`)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", LXC_BASE, "-r", LXC_SNAP))),
        Step("raw", "libbtrfsutil `create_snapshot` of the snapshot (floor)", Role.FLOOR,
             lambda i: raw_snapshot(snap_rootfs, ctx.raw_path(raw(i))),
             teardown=lambda i: raw_delete(ctx.raw_path(raw(i)))),
        interpreter_reference(),
    ]
    if lxd is not None:
        steps.append(Step("lxd", f"LXD (`lxc restore {LXD_BASE} {SNAP}`)", Role.PEER,
                          lambda i: lxd.run("restore", LXD_BASE, SNAP)))
    return steps


def _snapshot_delete_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    cli, api, raw = (_name(k) for k in ("cli", "api", "raw"))
    steps = [
        Step("cli", f"lxcow CLI (`lxcow snapshot delete {BASE} SNAP`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("snapshot", "delete", BASE, cli(i))),
             setup=lambda i: ctx.lx.snapshot_create(BASE, cli(i))),
        Step("api", f"lxcow API (`snapshot_delete('{BASE}', SNAP)`)", Role.LXCOW,
             lambda i: ctx.lx.snapshot_delete(BASE, api(i)),
             setup=lambda i: ctx.lx.snapshot_create(BASE, api(i))),
        Step("lxc", f"LXC (`lxc-snapshot -d {LXC_SNAP}`)", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", LXC_BASE, "-d", LXC_SNAP)),
             setup=lambda i: quiet(ctx.lxc("lxc-snapshot", "-n", LXC_BASE))),
        Step("raw", "libbtrfsutil `delete_subvolume` of a read-only snapshot (floor)",
             Role.FLOOR, lambda i: raw_delete(ctx.raw_path(raw(i))),
             setup=lambda i: raw_snapshot(ctx.rootfs(BASE), ctx.raw_path(raw(i)),
                                          readonly=True)),
        interpreter_reference(),
    ]
    if lxd is not None:
        name = _name("lxd")
        steps.append(Step("lxd", f"LXD (`lxc delete {LXD_BASE}/SNAP`)", Role.PEER,
                          lambda i: lxd.run("delete", f"{LXD_BASE}/{name(i)}"),
                          setup=lambda i: lxd.run("snapshot", LXD_BASE, name(i))))
    return steps


# -- start and stop -------------------------------------------------------------------------


def _start_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    path = ctx.pool.lxcow_lxcpath

    def kill(i: int) -> None:
        liblxc_kill(RUNNER, path)

    def settle(i: int) -> None:
        liblxc_ensure_stopped(RUNNER, path)

    steps = [
        Step("cli", f"lxcow CLI (`lxcow start {RUNNER}`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("start", RUNNER)), setup=settle, teardown=kill),
        Step("api", f"lxcow API (`start('{RUNNER}')`)", Role.LXCOW,
             lambda i: ctx.lx.start(RUNNER), setup=settle, teardown=kill),
        Step("lxc", "LXC (`lxc-start`) on the same container", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-start", "-n", RUNNER, lxcpath=path)),
             setup=settle, teardown=kill),
        Step("liblxc", "liblxc in-process (`start()` + `wait('RUNNING')`, floor)", Role.FLOOR,
             lambda i: liblxc_start(RUNNER, path), setup=settle, teardown=kill),
        Step("lxc-own", "LXC (`lxc-start`) on a container of LXC's busybox template",
             Role.PEER, lambda i: quiet(ctx.lxc("lxc-start", "-n", LXC_BASE)),
             setup=lambda i: liblxc_ensure_stopped(LXC_BASE, ctx.lxcpath),
             teardown=lambda i: liblxc_kill(LXC_BASE, ctx.lxcpath)),
    ]
    if lxd is not None:
        steps.append(Step("lxd", f"LXD (`lxc start {LXD_BASE}`)", Role.PEER,
                          lambda i: lxd.run("start", LXD_BASE),
                          teardown=lambda i: lxd.run("stop", "-f", LXD_BASE)))
    return steps


def _boot(name: str, lxcpath: Path) -> None:
    liblxc_ensure_stopped(name, lxcpath)
    liblxc_start(name, lxcpath)


def _stop_steps(ctx: Ctx, lxd: Lxd | None) -> list[Step]:
    path = ctx.pool.lxcow_lxcpath

    def boot(i: int) -> None:
        _boot(RUNNER, path)

    steps = [
        Step("cli", f"lxcow CLI (`lxcow stop --force {RUNNER}`)", Role.LXCOW,
             lambda i: quiet(ctx.cli("stop", "--force", RUNNER)), setup=boot),
        Step("api", f"lxcow API (`stop('{RUNNER}', force=True)`)", Role.LXCOW,
             lambda i: ctx.lx.stop(RUNNER, force=True), setup=boot),
        Step("lxc", "LXC (`lxc-stop -k`) on the same container", Role.PEER,
             lambda i: quiet(ctx.lxc("lxc-stop", "-k", "-n", RUNNER, lxcpath=path)),
             setup=boot),
        Step("liblxc", "liblxc in-process (`stop()` + `wait('STOPPED')`, floor)", Role.FLOOR,
             lambda i: liblxc_kill(RUNNER, path), setup=boot),
        Step("lxc-own", "LXC (`lxc-stop -k`) on a container of LXC's busybox template",
             Role.PEER, lambda i: quiet(ctx.lxc("lxc-stop", "-k", "-n", LXC_BASE)),
             setup=lambda i: _boot(LXC_BASE, ctx.lxcpath)),
    ]
    if lxd is not None:
        steps.append(Step("lxd", f"LXD (`lxc stop -f {LXD_BASE}`)", Role.PEER,
                          lambda i: lxd.run("stop", "-f", LXD_BASE),
                          setup=lambda i: lxd.run("start", LXD_BASE)))
    return steps


def _hook_notes(ctx: Ctx) -> list[str]:
    """The hooks LXC runs around a stop, as liblxc resolves each container's config."""
    notes = []
    for label, name, path in (("lxcow's container", RUNNER, ctx.pool.lxcow_lxcpath),
                              ("the LXC template's container", LXC_BASE, ctx.lxcpath)):
        hooks = config_items(name, path, "lxc.hook.post-stop")
        notes.append(f"post-stop hooks of {label}: "
                     + (", ".join(f"`{h}`" for h in hooks) if hooks else "none"))
    return notes


OPERATIONS = [
    Operation("create", "Create a container from a cached image",
              "a new stopped container from the busybox image (LXC: from a golden container)",
              lambda ctx, lxd: None, _create_steps),
    Operation("clone", "Clone a stopped container",
              "a copy-on-write copy of a stopped container", _bases, _clone_steps),
    Operation("delete", "Delete a stopped container",
              "remove a stopped container made from the image", _bases, _delete_steps),
    Operation("snapshot", "Snapshot a stopped container",
              "a read-only snapshot of a stopped container", _bases,
              _snapshot_steps(BASE, LXC_BASE, reference=True)),
    Operation("snapshot-running", "Snapshot a running container",
              "a read-only snapshot of a running container (lxcow freezes, syncs, snapshots "
              "and thaws it; the floor snapshots it unfrozen)",
              _runners, _snapshot_steps(RUNNER, LXC_BASE, reference=False)),
    Operation("restore", "Restore a snapshot",
              "put a stopped container back to its snapshot", _bases_with_snapshots,
              _restore_steps),
    Operation("snapshot-delete", "Delete a snapshot",
              "remove one read-only snapshot of a stopped container", _bases,
              _snapshot_delete_steps),
    Operation("start", "Start a container",
              "start lxcow's busybox container and wait until it is RUNNING (last LXC row: "
              "a container of LXC's busybox template)", _stopped_runner, _start_steps,
              _hook_notes),
    Operation("stop", "Stop (kill) a container",
              "kill lxcow's running container and wait until it is STOPPED (last LXC row: a "
              "container of LXC's busybox template)", _stopped_runner, _stop_steps,
              _hook_notes),
]
