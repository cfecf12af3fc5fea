"""A one-line progress display on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time

from lxcow.units import format_size


class TerminalProgress:
    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-6)
        amount = (f"{100 * done / total:5.1f}% {format_size(done)} of {format_size(total)}"
                  if total else format_size(done))
        note = f" ({note})" if note else ""
        sys.stderr.write(f"\r{self.label}: {amount}, {format_size(int(rate))}/s{note}\x1b[K")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
