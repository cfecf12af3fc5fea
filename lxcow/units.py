"""Parsing and printing byte sizes ("512MiB", "10G", "1.5TiB")."""

from __future__ import annotations

import re

from lxcow.errors import UsageError

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_SIZE = re.compile(r"\s*([0-9]+)(\.[0-9]+)?\s*([A-Za-z]*)\s*")


def parse_size(text: str, what: str = "size") -> int:
    """Bytes from a size such as ``20GiB``; a bare ``G`` or ``GB``-less letter means binary."""
    m = _SIZE.fullmatch(text)
    unit = m.group(3).lower() if m else ""
    if not m or unit not in _UNITS:
        raise UsageError(f"invalid {what} {text!r}",
                         hint="use a number with B, KiB, MiB, GiB or TiB")
    whole = int(m.group(1)) * _UNITS[unit]
    if m.group(2):
        whole += int(float(m.group(2)) * _UNITS[unit])
    return whole


def format_size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1023.95 or unit == "TiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")
