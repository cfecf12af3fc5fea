"""Rendering lists and records as a table, JSON, YAML or CSV, all from the same data."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("table", "json", "yaml", "csv")


def to_data(obj: Any) -> Any:
    """Plain JSON-ready data from dataclasses, enums, tuples and paths."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "value") and hasattr(obj, "name"):
        return obj.value
    return obj


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value) if value != "" else "-"


def render_list(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                fmt: str) -> str:
    """``columns`` are (key, heading) pairs for the table and CSV; JSON and YAML get all keys."""
    if fmt == "json":
        import json

        return json.dumps(list(rows), indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(list(rows), sort_keys=False, default_flow_style=False))
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([key for key, _ in columns])
        for row in rows:
            writer.writerow([_cell(row.get(key)) for key, _ in columns])
        return buf.getvalue()
    table = [[heading for _, heading in columns]]
    table += [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in table)
    return "".join(line + "\n" for line in lines)


def render_record(record: dict[str, Any], fmt: str) -> str:
    if fmt in ("json", "yaml"):
        if fmt == "json":
            import json

            return json.dumps(record, indent=2) + "\n"
        import yaml

        return str(yaml.safe_dump(record, sort_keys=False, default_flow_style=False))
    if fmt == "csv":
        keys = list(record)
        return render_list([record], [(k, k) for k in keys], "csv")
    width = max((len(k) for k in record), default=0) + 1
    return "".join(f"{(k + ':').ljust(width)} {_cell(v)}\n" for k, v in record.items())
