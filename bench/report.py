"""Markdown from a run's results: the same data as the JSON file, nothing typed by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from targets import TableData, growth_exponent, list_points

Results = dict[str, Any]
LXCOW = "lxcow"


# -- formatting -----------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 10000:
        return f"{seconds:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


def fmt_bytes(n: float) -> str:
    if abs(n) >= 1024**2:
        return f"{n / 1024**2:.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def fmt_ratio(r: float) -> str:
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def _fmt(table: TableData, value: float) -> str:
    return fmt_bytes(value) if table["unit"] == "bytes" else fmt_time(value)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _short(label: str) -> str:
    """A column heading for an lxcow system: its label up to the command."""
    return label.split(" (")[0].removeprefix("lxcow ")


# -- one table per operation ----------------------------------------------------------------


def render_table(table: TableData) -> str:
    systems = table["systems"]
    mine = [s for s in systems if s["role"] == LXCOW and s["stats"]]
    head = ["system", "n", "median", "p25–p75", "min–max"]
    head += [f"{_short(s['label'])} ÷ system" for s in mine]
    what = table["what"][:1].upper() + table["what"][1:]
    unit = f"; time per {table['per']}" if table["unit"] == "time" else ""
    lines = [f"### {table['title']}", "", f"{what}{unit}.", "", _row(head),
             _row(["---"] * 2 + ["---:"] * (len(head) - 2))]
    for s in systems:
        lines.append(_row(_system_cells(table, s, mine)))
    if table["notes"]:
        lines += ["", *(f"- {note}" for note in table["notes"])]
    return "\n".join(lines) + "\n"


def _system_cells(table: TableData, system: dict[str, Any],
                  mine: Sequence[dict[str, Any]]) -> list[str]:
    label = system["label"]
    stats = system["stats"]
    if not stats:
        reason = system["skipped"] or "no samples"
        return [label, "0", reason, "", "", *([""] * len(mine))]
    cells = [label, str(stats["n"]), _fmt(table, stats["median"])]
    if stats["n"] > 1:
        cells += [f"{_fmt(table, stats['p25'])}–{_fmt(table, stats['p75'])}",
                  f"{_fmt(table, stats['min'])}–{_fmt(table, stats['max'])}"]
    else:
        cells += ["", ""]
    for own in mine:
        if own is system or stats["median"] <= 0:
            cells.append("")
        else:
            cells.append(fmt_ratio(own["stats"]["median"] / stats["median"]))
    return cells


# -- growth tables --------------------------------------------------------------------------


def render_growth(tables: Sequence[TableData], group: str, title: str) -> str:
    members = sorted((t for t in tables if t.get("group") == group), key=lambda t: t["level"])
    if not members:
        return ""
    levels = [t["level"] for t in members]
    keys = [(s["key"], s["label"], s["role"]) for s in members[0]["systems"]]
    head = ["system", *(f"n = {n}" for n in levels), "growth exponent"]
    lines = [f"### {title}", "", "Median (p25–p75) per listing; growth exponent: how the time "
             "above the empty one grows between the two largest sizes (1.0 = linear).", "",
             _row(head), _row(["---"] + ["---:"] * (len(head) - 1))]
    for key, label, _ in keys:
        cells = [label]
        for t in members:
            stats = next((s["stats"] for s in t["systems"] if s["key"] == key), None)
            cells.append(f"{fmt_time(stats['median'])} ({fmt_time(stats['p25'])}–"
                         f"{fmt_time(stats['p75'])})" if stats else "n/a")
        exponent = growth_exponent(list_points(tables, group, key))
        cells.append(f"{exponent:.2f}" if exponent is not None else "n/a")
        lines.append(_row(cells))
    lines += ["", _row(["ratio", *(f"n = {n}" for n in levels)]),
              _row(["---"] + ["---:"] * len(levels))]
    for own in (k for k in keys if k[2] == LXCOW):
        for peer in (k for k in keys if k[2] != LXCOW):
            lines.append(_row([f"{own[1]} ÷ {peer[1]}",
                               *(_level_ratio(t, own[0], peer[0]) for t in members)]))
    notes = [n for t in members for n in t["notes"]]
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _level_ratio(table: TableData, num: str, den: str) -> str:
    stats = {s["key"]: s["stats"] for s in table["systems"]}
    a, b = stats.get(num), stats.get(den)
    if not a or not b or b["median"] <= 0:
        return "n/a"
    return fmt_ratio(a["median"] / b["median"])


# -- the whole report -----------------------------------------------------------------------


def render_targets(targets: Sequence[dict[str, Any]]) -> str:
    met = [t for t in targets if t["met"] is True]
    missed = [t for t in targets if t["met"] is False]
    unknown = [t for t in targets if t["met"] is None]
    summary = f"**Targets met: {len(met)} of {len(targets)}.**"
    if met:
        summary += " Met: " + "; ".join(t["id"] for t in met) + "."
    if missed:
        summary += " Missed: " + "; ".join(t["id"] for t in missed) + "."
    if unknown:
        summary += " Not measured: " + "; ".join(t["id"] for t in unknown) + "."
    lines = [summary, "", _row(["target", "measured", "limit", "result"]),
             _row(["---"] * 4)]
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    for t in targets:
        lines.append(_row([t["text"], t["measured"], t["limit"], verdict[t["met"]]]))
    return "\n".join(lines) + "\n"


def render(results: Results) -> str:
    tables = results["tables"]
    parts = [
        "# lxcow benchmark\n",
        f"Written by `{results['command']}` ({results['mode']} mode, "
        f"{results['duration_s']:.0f} s); every number below comes from that run. "
        "Rerun the command to regenerate this file and `docs/benchmark.json`.\n",
        _machine(results),
        "## Targets of issue 5\n",
        "Ratios are lxcow ÷ peer, medians of the same run, lower is better unless the "
        "target says otherwise.\n",
        render_targets(results["targets"]),
        "## Method\n",
        _method(results),
        "## Operations\n",
    ]
    parts += [render_table(t) for t in tables if t.get("group") is None]
    parts += ["## Scale\n",
              render_growth(tables, "scale-list", "Listing containers"),
              render_growth(tables, "scale-snapshots", "Listing the snapshots of one container"),
              "## Space\n"]
    parts += [render_table(t) for t in tables if t.get("group") == "space"]
    backup = [render_table(t) for t in tables if t.get("group") == "backup"]
    if backup:
        parts += ["## Backups\n", *backup]
    return "\n".join(p for p in parts if p)


def _machine(results: Results) -> str:
    lines = ["## Machine and versions\n", _row(["", ""]), _row(["---", "---"])]
    for key, value in results["machine"].items():
        lines.append(_row([key, value]))
    lines.append(_row(["LXD", results["lxd"]]))
    if results["lxcow_changed"]:
        lines.append(_row(["note", "lxcow's sources changed while the benchmark ran"]))
    return "\n".join(lines) + "\n"


def _method(results: Results) -> str:
    s = results["settings"]
    return (
        f"Each table ran in a fresh Btrfs pool of its own (a {s['pool_gib']} GiB sparse loop "
        "file, removed afterwards), holding lxcow's pool and LXC's lxcpath side by side. "
        f"Systems run interleaved, their order rotating each round: one warm-up round, then "
        f"{s['reps']} rounds for single operations, {s['startup_reps']} for start-up, "
        f"{s['fleet_reps']} for {s['fleet_count']} creations in a row, {s['scale_reps']} per "
        f"size for listings ({', '.join(map(str, s['scale_levels']))}), one for space "
        f"({s['space_count']} clones), {s.get('backup_reps', '-')} for exports of "
        f"{s.get('backup_mib', '-')} MiB. CLI rows time a whole process (fork, exec, exit) from "
        "this benchmark's Python; API, liblxc and libbtrfsutil rows time one call in the "
        "benchmark's own process. The libbtrfsutil row is the physical floor, one ioctl; the "
        "`python3 -c 'import lxc, btrfsutil'` row is the floor of any Python command. "
        "Medians and quartiles are over the rounds; the machine is shared, so compare "
        "ratios within one run rather than absolute times across runs.\n"
    )
