"""Reading files that may be gzip, xz, bzip2 or zstd compressed, counting raw bytes read."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator

from lxcow.errors import BadData

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import IO, Any

Progress = Callable[[int, int], None]

_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def detect(head: bytes) -> str:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


class CountingReader(io.RawIOBase):
    """A raw reader that reports how many bytes of the underlying file were consumed."""

    def __init__(self, f: IO[bytes], total: int, progress: Progress | None) -> None:
        self._f = f
        self.total = total
        self.done = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._f.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self.done += n
            if self._progress:
                self._progress(self.done, self.total)
        return n or 0


class _ZstdReader(io.RawIOBase):
    """zstd frames decoded one after another; input that ends inside a frame is an error.

    (zstandard's own stream reader ends quietly at a cut frame.)
    """

    def __init__(self, raw: IO[bytes], zstandard: Any) -> None:
        self._raw = raw
        self._zstd = zstandard
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._offset = 0
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        while self._offset >= len(self._pending):
            self._pending, self._offset = b"", 0
            chunk = self._raw.read(1 << 17)
            if not chunk:
                if self._in_frame:
                    raise self._zstd.ZstdError("zstd data ends inside a frame")
                return 0
            while chunk:
                self._in_frame = True
                self._pending += self._dobj.decompress(chunk)
                if not self._dobj.eof:
                    break
                # One frame is done; the rest of the chunk starts the next one.
                chunk = self._dobj.unused_data
                self._dobj = self._zstd.ZstdDecompressor().decompressobj()
                self._in_frame = False
        n = min(len(buf), len(self._pending) - self._offset)
        buf[:n] = memoryview(self._pending)[self._offset:self._offset + n]
        self._offset += n
        return n


@contextlib.contextmanager
def open_decompressed(
    path: str, *, progress: Progress | None = None
) -> Iterator[tuple[IO[bytes], str]]:
    """Yield a stream of the decompressed content of ``path`` and the compression's name."""
    import os

    with open(path, "rb") as raw:
        head = raw.read(8)
        raw.seek(0)
        kind = detect(head)
        counting = io.BufferedReader(CountingReader(raw, os.fstat(raw.fileno()).st_size, progress),
                                     buffer_size=1 << 20)
        stream: IO[bytes]
        if kind == "gzip":
            import gzip

            stream = gzip.GzipFile(fileobj=counting, mode="rb")  # type: ignore[assignment]
        elif kind == "xz":
            import lzma

            stream = lzma.LZMAFile(counting)
        elif kind == "bzip2":
            import bz2

            stream = bz2.BZ2File(counting)
        elif kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise BadData(f"{path}: zstd support is missing", hint="run ./install.sh") from None
            stream = io.BufferedReader(_ZstdReader(counting, zstandard), buffer_size=1 << 20)
        else:
            stream = counting
        with contextlib.closing(stream):
            yield stream, kind


def first_member(path: str) -> str | None:
    """The name of the first member of a (possibly compressed) tar archive, without ``./``.

    Raises BadData when the file is not a readable tar archive.
    """
    import tarfile

    errors: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, *decode_errors())
    try:
        with open_decompressed(path) as (stream, _):
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                first = tar.next()
    except errors as err:
        raise BadData(f"{path} is not a readable tar archive: {err}") from None
    return None if first is None else first.name.removeprefix("./")


def decode_errors() -> tuple[type[BaseException], ...]:
    """The exceptions decompressors raise on corrupt or truncated input."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [EOFError, zlib.error, lzma.LZMAError]
    with contextlib.suppress(ImportError):
        import gzip

        errors.append(gzip.BadGzipFile)
    with contextlib.suppress(ImportError):
        import zstandard

        errors.append(zstandard.ZstdError)
    return tuple(errors)
