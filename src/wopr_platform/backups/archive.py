"""A backup archive: a bot's data volume as a tar stream, compressed (zstd), sealed (`crypto.stream`), with its
manifest in the sealed stream's authenticated trailer.

`pack` turns the tar's bytes into the archive's as they come; `unpack` does the reverse and checks, as the bytes
pass, that the archive is one the platform made (the seal), that the tar is what the manifest says (size and
SHA-256), and that no entry could reach out of the volume it is restored into (`TarGuard`). Neither holds more than
a frame of the stream and the compressor's window in memory. What `unpack` yields is untrusted until it ended
without an error: a restore writes it into a fresh volume and keeps that volume only then.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
import queue
import tarfile
import threading
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import zstandard

from wopr_platform.core.errors import ArchiveRefused
from wopr_platform.crypto.stream import SealBroken, StreamKeys, open_sealed, seal

FORMAT = "wopr-backup/1"
ZSTD_LEVEL = 3
UNIT_BYTES = 1024 * 1024  # of the tar, compressed and flushed together: what one sealed frame opens into at most


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds, sealed in with it."""

    bot_id: str
    tenant_id: str
    image: str  # the image (by digest, where known) the bot ran when the backup was made
    tar_bytes: int  # the size of the volume's tar stream
    sha256: str  # of the tar stream
    created_at: str  # ISO 8601, UTC
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            manifest = cls(**data)
        except (ValueError, TypeError):
            raise ArchiveRefused("the archive's manifest is not readable", details={"reason": "manifest"}) from None
        if manifest.format != FORMAT:
            raise ArchiveRefused(
                f"the archive's format {manifest.format!r} is not {FORMAT!r}", details={"reason": "format"}
            )
        return manifest


async def pack(
    keys: StreamKeys, tar: AsyncIterable[bytes], facts: dict[str, str], made: list[Manifest]
) -> AsyncIterator[bytes]:
    """The archive of a tar stream, as it comes; once whole, its manifest (with `facts`: bot_id, tenant_id, image,
    created_at) is appended to `made`."""
    digest = hashlib.sha256()
    size = 0
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    async def compressed() -> AsyncIterator[bytes]:
        """The compressed stream in units of at most UNIT_BYTES of the tar each (a flushed block), each sealed in
        frames of its own: opening a frame can never expand into more than a unit."""
        nonlocal size
        pending = 0
        async for chunk in tar:
            digest.update(chunk)
            size += len(chunk)
            for at in range(0, len(chunk), UNIT_BYTES):
                piece = chunk[at : at + UNIT_BYTES]
                if pending + len(piece) > UNIT_BYTES:
                    unit = compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
                    pending = 0
                    if unit:
                        yield unit
                out = compressor.compress(piece)
                pending += len(piece)
                if out:
                    yield out
        yield compressor.flush()

    def trailer() -> bytes:
        manifest = Manifest(tar_bytes=size, sha256=digest.hexdigest(), **facts)
        made.append(manifest)
        return manifest.to_json()

    async for part in seal(keys, compressed(), trailer):
        yield part


async def unpack(
    keys: StreamKeys, archive: AsyncIterable[bytes], guard: TarGuard, opened: list[Manifest]
) -> AsyncIterator[bytes]:
    """The tar stream of an archive, as it opens, each piece checked by `guard`; once whole and checked against
    its manifest, the manifest is appended to `opened`. ArchiveRefused (while iterating) for anything wrong."""
    trailer: list[bytes] = []
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    digest = hashlib.sha256()
    size = 0
    try:
        async for plain in open_sealed(keys, archive, trailer):
            try:
                chunk = decompressor.decompress(plain)
            except zstandard.ZstdError:
                raise ArchiveRefused("the archive's data does not decompress", details={"reason": "data"}) from None
            if len(chunk) > 2 * UNIT_BYTES:  # not packed by `pack` (its frames never open into more than a unit)
                raise ArchiveRefused("the archive's data expands out of bounds", details={"reason": "data"})
            if not chunk:
                continue
            size += len(chunk)
            if size > guard.most_bytes + tarfile.RECORDSIZE:
                raise ArchiveRefused(
                    "the archive holds more than a volume may",
                    details={"reason": "too_large", "limit": guard.most_bytes},
                )
            digest.update(chunk)
            await guard.feed(chunk)
            yield chunk
        await guard.finish()
    except SealBroken as broken:
        raise ArchiveRefused(f"the archive is refused: {broken}", details={"reason": "seal"}) from None
    finally:
        await guard.close()
    manifest = Manifest.from_json(trailer[0])
    if manifest.tar_bytes != size or manifest.sha256 != digest.hexdigest():
        raise ArchiveRefused("the archive's data is not what its manifest says", details={"reason": "manifest"})
    opened.append(manifest)


class TarGuard:
    """Checks every entry of a tar stream as its bytes pass (Python's tarfile reads them on a thread of its own):
    only files, directories and links that stay within the archive's root, at most `most_entries` entries and
    `most_bytes` in all. `feed` raises ArchiveRefused as soon as an entry is refused."""

    def __init__(self, *, most_bytes: int, most_entries: int, root: str | None = None) -> None:
        self.most_bytes = most_bytes
        self.most_entries = most_entries
        self.root = root  # when given, every entry is this directory or lies under it
        # a queue of two pieces (up to a unit each): what waits for the checker stays bounded on a slow machine
        self._pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self._refused: ArchiveRefused | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._check, name="wopr-tar-guard", daemon=True)
        self._thread.start()

    async def feed(self, chunk: bytes) -> None:
        self._raise_if_refused()
        await asyncio.to_thread(self._put, chunk)
        self._raise_if_refused()

    async def finish(self) -> None:
        """The stream ended: wait for the last entries' checks."""
        await asyncio.to_thread(self._put, None)
        await asyncio.to_thread(self._done.wait)
        self._raise_if_refused()

    async def close(self) -> None:
        """Stop the checking thread (after `finish`, or when the stream was abandoned)."""
        if not self._done.is_set():
            self._refused = self._refused or ArchiveRefused("the archive was not read to its end", details={})
            await asyncio.to_thread(self._put, None)
            await asyncio.to_thread(self._done.wait)

    def _put(self, piece: bytes | None) -> None:
        while not self._done.is_set():
            try:
                self._pieces.put(piece, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_if_refused(self) -> None:
        if self._refused is not None:
            raise self._refused

    def _check(self) -> None:
        try:
            with tarfile.open(fileobj=_Pieces(self._pieces), mode="r|") as tar:
                seen: set[str] = set()
                total = 0
                for count, member in enumerate(tar, 1):
                    if count > self.most_entries:
                        raise _refuse("the archive holds too many entries", member, "too_many_entries")
                    total += max(0, member.size)
                    if total > self.most_bytes:
                        raise _refuse("the archive holds more than a volume may", member, "too_large")
                    _check_member(member, seen, self.root)
        except ArchiveRefused as refused:
            self._refused = refused
        except (tarfile.TarError, EOFError, OSError) as err:
            self._refused = ArchiveRefused(f"the archive's data is not a tar stream: {err}", details={"reason": "tar"})
        finally:
            self._done.set()
            _drain(self._pieces)


def _refuse(message: str, member: tarfile.TarInfo, reason: str) -> ArchiveRefused:
    return ArchiveRefused(message, details={"reason": reason, "entry": member.name[:300]})


def _inside(path: str) -> str | None:
    """`path` normalized, relative to the archive's root; None when it is absolute or climbs out of the root."""
    if path.startswith("/"):
        return None
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return None
    return normal


def _under(path: str, root: str | None) -> bool:
    return root is None or path.split("/", 1)[0] == root


def _check_member(member: tarfile.TarInfo, seen: set[str], root: str | None = None) -> None:
    name = _inside(member.name)
    if name is None or ".." in member.name.split("/"):
        raise _refuse("an entry's path leaves the volume", member, "path")
    if not _under(name, root):
        raise _refuse("an entry lies outside the volume's directory", member, "path")
    if member.isdev() or member.isfifo():
        raise _refuse("the archive holds a device or a pipe", member, "device")
    if member.issym():
        target = _inside(posixpath.join(posixpath.dirname(name), member.linkname))
        if target is None or member.linkname.startswith("/") or not _under(target, root):
            raise _refuse("a link leaves the volume", member, "link")
    elif member.islnk():
        target = _inside(member.linkname)
        if target is None or target not in seen:
            raise _refuse("a hard link points at no earlier file of the archive", member, "link")
    elif not (member.isreg() or member.isdir()):
        raise _refuse("the archive holds an entry of an unknown kind", member, "kind")
    if member.isreg():
        seen.add(name)


def _drain(pieces: queue.Queue[bytes | None]) -> None:
    while True:
        try:
            pieces.get_nowait()
        except queue.Empty:
            return


class _Pieces:
    """A file to read from the pieces a queue brings (None: the end)."""

    def __init__(self, pieces: queue.Queue[bytes | None]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            piece = self._pieces.get()
            if piece is None:
                self._ended = True
            else:
                self._buffer += piece
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def __getattr__(self, name: str) -> Any:  # tarfile asks for nothing else in stream mode
        raise AttributeError(name)
