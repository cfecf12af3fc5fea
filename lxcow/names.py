"""Validation of the names users give to containers, snapshots, images and aliases."""

from __future__ import annotations

import re

from lxcow.errors import UsageError

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def check_name(name: str, what: str = "container") -> str:
    """A container or snapshot name must be a valid hostname label (RFC 1123)."""
    if not _HOSTNAME.fullmatch(name):
        raise UsageError(
            f"invalid {what} name {name!r}",
            hint="use 1-63 letters, digits and '-', not starting or ending with '-'",
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or is_fingerprint_prefix(alias) and len(alias) == 64:
        raise UsageError(
            f"invalid image alias {alias!r}",
            hint="use 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return alias


def is_fingerprint(text: str) -> bool:
    return bool(_FINGERPRINT.fullmatch(text))


def is_fingerprint_prefix(text: str) -> bool:
    return 0 < len(text) <= 64 and all(c in "0123456789abcdef" for c in text)
