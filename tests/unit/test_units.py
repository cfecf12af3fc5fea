"""Parsing and printing byte sizes."""

from __future__ import annotations

import pytest

from lxcow.errors import UsageError
from lxcow.units import format_size, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0),
    ("512", 512),
    ("512B", 512),
    ("1k", KiB),
    ("1KiB", KiB),
    ("1KB", 1000),
    ("256MiB", 256 * MiB),
    ("256M", 256 * MiB),
    ("256MB", 256_000_000),
    ("20GiB", 20 * GiB),
    ("20G", 20 * GiB),
    ("20GB", 20_000_000_000),
    ("20gib", 20 * GiB),
    ("1.5GiB", 3 * GiB // 2),
    ("0.5KiB", 512),
    ("2TiB", 2 * TiB),
    ("1T", TiB),
    ("1TB", 10**12),
    (" 10 G ", 10 * GiB),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", " ", "G", "GiB", "-1G", "+1G", "1e3", "1,5G", "1.G",
                                  ".5G", "10 XB", "10PiB", "10Gi", "ten", "1 G B", "0x10"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_size(text, "pool size")

    assert err.value.exit_code == 2
    assert f"invalid pool size {text!r}" in str(err.value)


def test_parse_size_is_exact_for_large_byte_counts() -> None:
    assert parse_size(str(2**53 + 1)) == 2**53 + 1


def test_parse_size_refuses_non_ascii_digits() -> None:
    with pytest.raises(UsageError):
        parse_size("٣G")


@pytest.mark.parametrize(("n", "expected"), [
    (None, "-"),
    (0, "0B"),
    (1023, "1023B"),
    (1024, "1.0KiB"),
    (1536, "1.5KiB"),
    (256 * MiB, "256.0MiB"),
    (20 * GiB, "20.0GiB"),
    (5 * TiB, "5.0TiB"),
    (2048 * TiB, "2048.0TiB"),
])
def test_format_size(n: int | None, expected: str) -> None:
    assert format_size(n) == expected


@pytest.mark.parametrize("n", [3 * GiB // 2, 20 * GiB, 256 * MiB, 7 * KiB, 42])
def test_format_then_parse_round_trips(n: int) -> None:
    assert parse_size(format_size(n)) == n
