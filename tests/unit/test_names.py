"""Validation of container, snapshot and alias names, and fingerprint recognition."""

from __future__ import annotations

import pytest

from lxcow import names
from lxcow.errors import ExitCode, UsageError

FP = "0123456789abcdef" * 4


@pytest.mark.parametrize("name", ["a", "Z", "7", "123", "web-1", "a--b", "A" * 63,
                                  "x" + "-" * 61 + "y"])
def test_check_name_accepts_hostname_labels(name: str) -> None:
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a" * 64, "-a", "a_b", "a.b", "a/b", "a b", " a", "a ", "é", "ü1", "٣", "..", ".",
    "a\n", "a\0",
])
def test_check_name_refuses_non_labels(name: str) -> None:
    with pytest.raises(UsageError) as err:
        names.check_name(name)

    assert err.value.exit_code == ExitCode.USAGE
    assert int(err.value.exit_code) == 2
    assert repr(name) in str(err.value)


def test_check_name_names_what_was_checked() -> None:
    with pytest.raises(UsageError, match="invalid snapshot name"):
        names.check_name("bad_name", "snapshot")


def test_check_name_refuses_trailing_hyphen() -> None:
    with pytest.raises(UsageError):
        names.check_name("web-")


@pytest.mark.parametrize("alias", ["a", "debian", "debian-12", "alpine_3.19", "9", "a" * 63,
                                   "v1.2.3"])
def test_check_alias_accepts(alias: str) -> None:
    assert names.check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["", ".hidden", "-x", "_x", "a/b", "..", ".", "a b", "é",
                                   "a" * 64, FP])
def test_check_alias_refuses(alias: str) -> None:
    with pytest.raises(UsageError) as err:
        names.check_alias(alias)

    assert err.value.exit_code == 2


def test_is_fingerprint_needs_64_lowercase_hex_digits() -> None:
    assert names.is_fingerprint(FP)
    assert not names.is_fingerprint(FP[:63])
    assert not names.is_fingerprint(FP + "0")
    assert not names.is_fingerprint(FP.upper())
    assert not names.is_fingerprint("g" + FP[1:])
    assert not names.is_fingerprint("")


def test_is_fingerprint_prefix() -> None:
    assert names.is_fingerprint_prefix("0")
    assert names.is_fingerprint_prefix("abc123")
    assert names.is_fingerprint_prefix(FP)
    assert not names.is_fingerprint_prefix("")
    assert not names.is_fingerprint_prefix(FP + "a")
    assert not names.is_fingerprint_prefix("ABC")
    assert not names.is_fingerprint_prefix("debian")
