"""lxcow: LXC containers on a Btrfs backing store."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import Any


__version__ = "0.1.0"

if TYPE_CHECKING:
    from lxcow.api import Lxcow

__all__ = ["Lxcow", "__version__"]


def __getattr__(name: str) -> Any:
    # The API is imported on first use, so that `lxcow --version` stays cheap.
    if name == "Lxcow":
        from lxcow.api import Lxcow

        return Lxcow
    raise AttributeError(name)
