"""The backup file format: a tar archive of JSON metadata and chunked Btrfs send streams.

Members, in this order (documented in docs/backup-format.md)::

    lxcow-backup/header.json                what the backup holds (written first)
    lxcow-backup/streams/0000/000000[.zst]   chunks of stream 0, in order
    lxcow-backup/streams/0000/000001[.zst]
    lxcow-backup/streams/0001/000000[.zst]   ...
    lxcow-backup/trailer.json               SHA-256 and size of every stream (written last)

Streams are written as ``btrfs send`` produces them, one chunk at a time, so no stream is
ever spooled to disk; that is why the checksums come in a trailer.  A file without its
trailer is not a backup.  Each compressed chunk is a complete zstd frame, so
``tar -xOf FILE lxcow-backup/streams/0000 | zstd -dc | btrfs receive DIR`` works.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
import time
from collections.abc import Callable, Iterator

from lxcow.errors import BadData

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only checkers need it
if TYPE_CHECKING:
    from typing import IO, Any

FORMAT = "lxcow-backup"
VERSION = 1
PREFIX = "lxcow-backup"
HEADER = f"{PREFIX}/header.json"
TRAILER = f"{PREFIX}/trailer.json"
CHUNK = 8 << 20
COMPRESSIONS = ("zstd", "none")

# Called with the bytes done, the total (0 when unknown) and a note such as "stream 2/5".
Progress = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class StreamDigest:
    index: int
    sha256: str
    bytes: int
    chunks: int


def chunk_name(index: int, chunk: int, compression: str) -> str:
    suffix = ".zst" if compression == "zstd" else ""
    return f"{PREFIX}/streams/{index:04d}/{chunk:06d}{suffix}"


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(time.time())
    return info


class Writer:
    """Writes a backup to an open binary file, member by member, never seeking.

    Each member is a pax header from tarfile followed by the data and its padding, written
    straight to the file: tarfile's own stream writer copies every byte through a buffer.
    """

    def __init__(self, f: IO[bytes], compression: str) -> None:
        if compression not in COMPRESSIONS:
            raise BadData(f"unknown compression {compression}")
        self.compression = compression
        self._f = f
        self._compressor: Any = None
        if compression == "zstd":
            import zstandard

            self._compressor = zstandard.ZstdCompressor(level=3)
        self.header_sha256 = ""
        self.digests: list[StreamDigest] = []

    def _add(self, name: str, data: bytes) -> None:
        header = _member(name, len(data)).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._f.write(header)
        self._f.write(data)
        self._f.write(bytes(-len(data) % tarfile.BLOCKSIZE))

    def header(self, header: dict[str, Any]) -> None:
        data = json.dumps(header, indent=2, sort_keys=True).encode()
        self.header_sha256 = hashlib.sha256(data).hexdigest()
        self._add(HEADER, data)

    def stream(self, index: int, source: IO[bytes], progress: Progress | None = None,
               done_before: int = 0, note: str = "") -> StreamDigest:
        """Copy one send stream into the backup, chunk by chunk, as it is produced."""
        h = hashlib.sha256()
        total = 0
        chunk = 0
        while True:
            data = _read_full(source, CHUNK)
            if not data:
                break
            h.update(data)
            total += len(data)
            payload = self._compressor.compress(data) if self._compressor else data
            self._add(chunk_name(index, chunk, self.compression), payload)
            chunk += 1
            if progress:
                progress(done_before + total, 0, note)
        digest = StreamDigest(index, h.hexdigest(), total, chunk)
        self.digests.append(digest)
        return digest

    def trailer(self, backup_id: str) -> None:
        data = json.dumps({
            "format": FORMAT, "version": VERSION, "id": backup_id,
            "header_sha256": self.header_sha256,
            "streams": [dataclasses.asdict(d) for d in self.digests],
        }, indent=2, sort_keys=True).encode()
        self._add(TRAILER, data)
        # The end of a tar archive: two zero blocks, padded to tar's record size.
        self._f.write(bytes(tarfile.RECORDSIZE))


def _read_full(f: IO[bytes], size: int) -> bytes:
    parts = []
    left = size
    while left:
        data = f.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def check_header(header: Any, where: str) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BadData(f"{where} is not an lxcow backup")
    if header.get("version") != VERSION:
        raise BadData(f"{where} has backup format version {header.get('version')}, "
                      f"this lxcow reads version {VERSION}")
    for key in ("id", "container", "streams", "snapshots", "compression"):
        if key not in header:
            raise BadData(f"{where}: the header lacks {key!r}")
    return header


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise BadData(f"{where}: damaged metadata: {err}") from None


class Reader:
    """Reads a backup front to back in one pass, checking order, sizes and checksums."""

    def __init__(self, f: IO[bytes], where: str) -> None:
        self.where = where
        try:
            self._tar = tarfile.open(fileobj=f, mode="r|")
            first = self._tar.next()
        except (tarfile.TarError, EOFError) as err:
            raise BadData(f"{where} is not an lxcow backup: {err}") from None
        if first is None or first.name != HEADER:
            raise BadData(f"{where} is not an lxcow backup")
        raw = self._read(first)
        self.header_sha256 = hashlib.sha256(raw).hexdigest()
        self.header = check_header(_json(raw, where), where)
        self.trailer: dict[str, Any] | None = None
        self._sums: dict[int, tuple[str, int, int]] = {}
        self._decompressor: Any = None
        if self.header["compression"] == "zstd":
            import zstandard

            self._decompressor = zstandard.ZstdDecompressor()

    def _read(self, member: tarfile.TarInfo) -> bytes:
        try:
            f = self._tar.extractfile(member)
            if f is None:
                raise BadData(f"{self.where}: {member.name} is not a file")
            data = f.read()
        except (tarfile.TarError, EOFError) as err:
            raise BadData(f"{self.where} is truncated or damaged: {err}") from None
        if len(data) != member.size:
            raise BadData(f"{self.where} is truncated")
        return data

    def streams(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        """Yield (stream index, iterator over its decompressed chunks) for each stream.

        Each chunk iterator must be consumed before the next stream is asked for.  After the
        last stream, the trailer is read and every checksum compared; any damage raises
        BadData.
        """
        count = len(self.header["streams"])
        pending: tarfile.TarInfo | None = self._next()
        for index in range(count):
            state = {"member": pending}
            yield index, self._chunks(index, state)
            pending = state["member"]
        if pending is None or pending.name != TRAILER:
            raise BadData(f"{self.where} is incomplete: it has no trailer")
        self.trailer = _json(self._read(pending), self.where)
        self._check_trailer()

    def _next(self) -> tarfile.TarInfo | None:
        try:
            return self._tar.next()
        except (tarfile.TarError, EOFError) as err:
            raise BadData(f"{self.where} is truncated or damaged: {err}") from None

    def _chunks(self, index: int, state: dict[str, Any]) -> Iterator[bytes]:
        h = hashlib.sha256()
        total = 0
        chunk = 0
        member = state["member"]
        compression = self.header["compression"]
        while member is not None and member.name.startswith(f"{PREFIX}/streams/"):
            if member.name != chunk_name(index, chunk, compression):
                break
            data = self._read(member)
            if self._decompressor is not None:
                try:
                    data = self._decompressor.decompress(data)
                except Exception as err:
                    raise BadData(f"{self.where}: stream {index} is damaged: {err}") from None
            h.update(data)
            total += len(data)
            chunk += 1
            yield data
            member = self._next()
        if member is not None and member.name.startswith(f"{PREFIX}/streams/") and \
                not member.name.startswith(f"{PREFIX}/streams/{index + 1:04d}/"):
            raise BadData(f"{self.where}: unexpected member {member.name}")
        state["member"] = member
        self._sums[index] = (h.hexdigest(), total, chunk)

    def _check_trailer(self) -> None:
        trailer = self.trailer
        if not isinstance(trailer, dict) or trailer.get("id") != self.header["id"]:
            raise BadData(f"{self.where}: the trailer does not belong to this backup")
        if trailer.get("header_sha256") != self.header_sha256:
            raise BadData(f"{self.where}: the header is damaged (checksum mismatch)")
        expected = {int(s["index"]): s for s in trailer.get("streams", [])}
        for index, (sha, size, _) in self._sums.items():
            want = expected.get(index)
            if want is None or want["sha256"] != sha or want["bytes"] != size:
                raise BadData(f"{self.where}: stream {index} is damaged (checksum mismatch)")
        if len(expected) != len(self.header["streams"]):
            raise BadData(f"{self.where}: the trailer does not list every stream")


def summary(path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Header and trailer of a backup file, found by seeking over the streams."""
    import os

    if not os.path.isfile(path):
        from lxcow.errors import NotFound

        raise NotFound(f"backup file {path} not found")
    try:
        with tarfile.open(path, mode="r:") as tar:
            header = trailer = None
            for member in tar:
                if member.name in (HEADER, TRAILER):
                    f = tar.extractfile(member)
                    data = f.read() if f else b""
                    if member.name == HEADER:
                        header = check_header(_json(data, path), path)
                    else:
                        trailer = _json(data, path)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BadData(f"{path} is not a readable lxcow backup: {err}") from None
    if header is None:
        raise BadData(f"{path} is not an lxcow backup")
    return header, trailer
