"""Recognising and reading gzip, xz, bzip2, zstd and plain files, with progress."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from lxcow.compression import decode_errors, detect, open_decompressed

DATA = b"lxcow test data\n" * 4000 + bytes(range(256)) * 16

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda b: gzip.compress(b, compresslevel=1),
    "xz": lambda b: lzma.compress(b, preset=0),
    "bzip2": lambda b: bz2.compress(b, compresslevel=1),
    "zstd": lambda b: zstandard.ZstdCompressor(level=1).compress(b),
    "none": lambda b: b,
}


@pytest.mark.parametrize(("head", "kind"), [
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"\xfd7zXZ\x00\x00\x04", "xz"),
    (b"BZh91AY&SY", "bzip2"),
    (b"\x28\xb5\x2f\xfd\x20", "zstd"),
    (b"ustar\0", "none"),
    (b"", "none"),
    (b"\x1f", "none"),
    (b"BZ", "none"),
    (b"\xfd7zXY", "none"),
])
def test_detect(head: bytes, kind: str) -> None:
    assert detect(head) == kind


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressors_are_detected(kind: str) -> None:
    assert detect(COMPRESSORS[kind](DATA)[:8]) == kind


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_round_trip(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"data.{kind}"
    path.write_bytes(COMPRESSORS[kind](DATA))

    with open_decompressed(os.fspath(path)) as (stream, found):
        assert found == kind
        assert stream.read() == DATA


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2", "zstd"])
def test_concatenated_streams_are_read_to_the_end(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"data.{kind}"
    path.write_bytes(COMPRESSORS[kind](b"first\n") + COMPRESSORS[kind](b"second\n"))

    with open_decompressed(os.fspath(path)) as (stream, _):
        assert stream.read() == b"first\nsecond\n"


def test_read_in_small_pieces(tmp_path: Path) -> None:
    path = tmp_path / "data.zst"
    path.write_bytes(COMPRESSORS["zstd"](DATA))

    pieces = []
    with open_decompressed(os.fspath(path)) as (stream, _):
        while piece := stream.read(1000):
            pieces.append(piece)

    assert b"".join(pieces) == DATA


@pytest.mark.parametrize("kind", ["gzip", "none"])
def test_progress_counts_raw_bytes_up_to_the_file_size(tmp_path: Path, kind: str) -> None:
    # Incompressible data larger than the 1 MiB read buffer, so several reads are reported.
    path = tmp_path / f"big.{kind}"
    path.write_bytes(COMPRESSORS[kind](os.urandom(3 << 20)))
    size = path.stat().st_size
    calls: list[tuple[int, int]] = []

    with open_decompressed(os.fspath(path), progress=lambda d, t: calls.append((d, t))) as (s, _):
        while s.read(1 << 16):
            pass

    done = [d for d, _ in calls]
    assert len(calls) >= 3
    assert done == sorted(set(done))
    assert done[-1] == size
    assert {total for _, total in calls} == {size}


@pytest.mark.parametrize("kind", ["xz", "bzip2", "zstd"])
def test_progress_ends_at_the_file_size(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"data.{kind}"
    path.write_bytes(COMPRESSORS[kind](DATA))
    calls: list[tuple[int, int]] = []

    with open_decompressed(os.fspath(path), progress=lambda d, t: calls.append((d, t))) as (s, _):
        s.read()

    assert calls and calls[-1] == (path.stat().st_size, path.stat().st_size)


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2", "zstd"])
def test_truncated_input_raises_a_decode_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"cut.{kind}"
    whole = COMPRESSORS[kind](os.urandom(1 << 16))
    path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(decode_errors()):
        with open_decompressed(os.fspath(path)) as (stream, _):
            stream.read()


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        with open_decompressed(os.fspath(tmp_path / "nothing")):
            pass
