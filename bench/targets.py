"""Issue 5's targets, evaluated on the medians of one run (ratios are lxcow / peer)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

TableData = dict[str, Any]

SINGLE_CLI_OPS = ("create", "clone", "snapshot", "restore", "delete")
LIST_LEVEL = 1000
LIST_LIMIT_S = 0.5
LINEAR_EXPONENT = 1.2
SPACE_LIMIT = 100 * 1024


@dataclasses.dataclass(frozen=True)
class Target:
    id: str
    text: str
    measured: str
    limit: str
    value: float | None
    met: bool | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def median(tables: Sequence[TableData], table_id: str, key: str) -> float | None:
    for table in tables:
        if table["id"] != table_id:
            continue
        for system in table["systems"]:
            if system["key"] == key and system["stats"] and not system["skipped"]:
                return float(system["stats"]["median"])
    return None


def growth_exponent(points: Sequence[tuple[int, float]]) -> float | None:
    """How time minus the empty-pool time grows between the two largest sizes.

    1.0 is linear; 2.0 would be quadratic.  None when there is no empty-pool time or the
    differences are not positive (noise larger than the growth).
    """
    base = dict(points).get(0)
    sized = sorted((n, t) for n, t in points if n > 0)
    if base is None or len(sized) < 2:
        return None
    (n1, t1), (n2, t2) = sized[-2], sized[-1]
    if t1 <= base or t2 <= base:
        return None
    return math.log((t2 - base) / (t1 - base)) / math.log(n2 / n1)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"


def _ratio(tid: str, text: str, tables: Sequence[TableData], table: str, num: str, den: str,
           limit: float, *, at_least: bool = False, floor: str | None = None) -> Target:
    """``num / den`` in one table against a limit; ``floor / den`` shows what is reachable."""
    a, b = median(tables, table, num), median(tables, table, den)
    bound = f"{'≥' if at_least else '≤'} {limit:g}x"
    if a is None or b is None:
        return Target(tid, text, f"not measured ({table}: {num} or {den} missing)", bound,
                      None, None)
    value = a / b
    met = value >= limit if at_least else value <= limit
    measured = f"{num} {_ms(a)} ÷ {den} {_ms(b)} = {value:.2f}x"
    reachable = median(tables, table, floor) if floor else None
    if reachable is not None:
        measured += f" (the floor, {floor}: {reachable / b:.2f}x)"
    return Target(tid, text, measured, bound, value, met)


def evaluate(tables: Sequence[TableData], lxd: bool) -> list[Target]:
    targets = [
        _ratio(f"api-{op}-vs-raw", f"Python API {op} within 1.5x of the raw snapshot ioctl",
               tables, op, "api", "raw", 1.5)
        for op in ("create", "clone", "snapshot")
    ]
    targets.append(_ratio("fleet-vs-lxc", "fleet create: per container at most half an "
                          "`lxc-copy -s` loop", tables, "fleet", "cli-fleet", "lxc-loop", 0.5,
                          floor="raw-loop"))
    if lxd:
        targets.append(_ratio("fleet-vs-lxd", "fleet create: at least 20x faster per "
                              "container than LXD (LXD ÷ lxcow)", tables, "fleet", "lxd-loop",
                              "cli-fleet", 20, at_least=True))
    targets += [
        _ratio(f"cli-{op}-vs-python", f"CLI {op} within 2x of starting "
               "`python3 -c 'import lxc, btrfsutil'`", tables, op, "cli", "python", 2.0)
        for op in SINGLE_CLI_OPS
    ]
    if lxd:
        targets += [
            _ratio(f"cli-{op}-vs-lxd", f"CLI {op} at least 2x faster than LXD (LXD ÷ lxcow)",
                   tables, op, "lxd", "cli", 2.0, at_least=True)
            for op in SINGLE_CLI_OPS
        ]
    return [*targets, _list_time(tables), _list_growth(tables), _space(tables)]


def _list_time(tables: Sequence[TableData]) -> Target:
    text = f"`lxcow list` with {LIST_LEVEL} containers under {LIST_LIMIT_S:g} s"
    t = median(tables, f"list-{LIST_LEVEL}", "cli")
    limit = f"< {LIST_LIMIT_S:g} s"
    if t is None:
        return Target("list-1000", text, "not measured", limit, None, None)
    return Target("list-1000", text, f"{t:.3f} s", limit, t, t < LIST_LIMIT_S)


def list_points(tables: Sequence[TableData], group: str, key: str) -> list[tuple[int, float]]:
    points = []
    for table in tables:
        if table.get("group") == group:
            t = median(tables, table["id"], key)
            if t is not None:
                points.append((int(table["level"]), t))
    return points


def _list_growth(tables: Sequence[TableData]) -> Target:
    text = "`lxcow list` grows linearly with the number of containers, not worse"
    limit = f"exponent ≤ {LINEAR_EXPONENT:g}"
    exponent = growth_exponent(list_points(tables, "scale-list", "cli"))
    if exponent is None:
        return Target("list-linear", text, "not measurable", limit, None, None)
    return Target("list-linear", text,
                  f"exponent {exponent:.2f} (time above the empty pool's, 100 → 1000)", limit,
                  exponent, exponent <= LINEAR_EXPONENT)


def _space(tables: Sequence[TableData]) -> Target:
    text = "100 clones: under 100 KiB of exclusive space each"
    limit = f"< {SPACE_LIMIT // 1024} KiB"
    per_clone = median(tables, "space-pool", "api")
    qgroup = median(tables, "space-qgroup", "api")
    if per_clone is None:
        return Target("space", text, "not measured", limit, None, None)
    measured = f"{per_clone / 1024:.1f} KiB per clone of pool growth"
    if qgroup is not None:
        measured += f" (quota group exclusive: median {qgroup / 1024:.1f} KiB)"
    return Target("space", text, measured, limit, per_clone, per_clone < SPACE_LIMIT)
