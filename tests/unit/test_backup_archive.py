"""Backup archives (backups/archive.py): a volume's tar stream packed (zstd, sealed, with its manifest) and
unpacked whole; tampered archives and hostile entries refused with their reason; memory bounded by a frame."""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import zstandard

from wopr_platform.backups.archive import Manifest, TarGuard, pack, unpack
from wopr_platform.core.errors import ArchiveRefused
from wopr_platform.crypto.stream import StreamKeys, seal

KEYS = StreamKeys("k" * 40)
FACTS = {"bot_id": "b-1", "tenant_id": "t-1", "image": "img@sha256:" + "a" * 64, "created_at": "2026-12-06T00:00:00Z"}


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    return out.getvalue()


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def _volume(tar: tarfile.TarFile) -> None:
    _file(tar, "data", kind=tarfile.DIRTYPE)
    _file(tar, "data/config.json", b'{"name": "bot"}')
    _file(tar, "data/memory/notes.md", os.urandom(100_000))
    _file(tar, "data/current", kind=tarfile.SYMTYPE, link="memory/notes.md")
    _file(tar, "data/again", kind=tarfile.LNKTYPE, link="data/config.json")
    _file(tar, "data/" + "long-name-" * 30, b"pax names pass")


async def _chunks(data: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


async def _pack(tar: bytes) -> tuple[bytes, Manifest]:
    made: list[Manifest] = []
    archive = b"".join([part async for part in pack(KEYS, _chunks(tar), FACTS, made)])
    return archive, made[0]


async def _unpack(archive: bytes, most_bytes: int = 10**9, most_entries: int = 10_000) -> tuple[bytes, Manifest]:
    opened: list[Manifest] = []
    guard = TarGuard(most_bytes=most_bytes, most_entries=most_entries)
    tar = b"".join([part async for part in unpack(KEYS, _chunks(archive, 7_000), guard, opened)])
    return tar, opened[0]


async def test_a_volume_packs_and_unpacks_whole_with_its_manifest() -> None:
    tar = _tar(_volume)
    archive, manifest = await _pack(tar)
    assert b"config.json" not in archive and len(archive) < len(tar)  # sealed, and compressed
    assert (manifest.bot_id, manifest.tar_bytes) == ("b-1", len(tar))
    assert await _unpack(archive) == (tar, manifest)


HOSTILE: list[tuple[str, Callable[[tarfile.TarFile], None]]] = [
    ("path", lambda t: _file(t, "../evil")),
    ("path", lambda t: _file(t, "/etc/cron.d/evil")),
    ("path", lambda t: _file(t, "data/../../evil")),
    ("link", lambda t: _file(t, "data/etc", kind=tarfile.SYMTYPE, link="/etc")),
    ("link", lambda t: _file(t, "data/up", kind=tarfile.SYMTYPE, link="../../outside")),
    ("link", lambda t: _file(t, "data/passwd", kind=tarfile.LNKTYPE, link="/etc/passwd")),
    ("link", lambda t: _file(t, "data/hard", kind=tarfile.LNKTYPE, link="data/not-there")),
    ("device", lambda t: _file(t, "data/disk", kind=tarfile.BLKTYPE)),
    ("device", lambda t: _file(t, "data/tty", kind=tarfile.CHRTYPE)),
    ("device", lambda t: _file(t, "data/pipe", kind=tarfile.FIFOTYPE)),
]


@pytest.mark.parametrize(("reason", "entry"), HOSTILE)
async def test_hostile_entries_are_refused_with_their_reason(
    reason: str, entry: Callable[[tarfile.TarFile], None]
) -> None:
    def add(tar: tarfile.TarFile) -> None:
        _volume(tar)
        entry(tar)

    archive, _ = await _pack(_tar(add))
    with pytest.raises(ArchiveRefused) as refused:
        await _unpack(archive)
    assert refused.value.details["reason"] == reason


ROOTED: list[tuple[str, Callable[[tarfile.TarFile], None]]] = [
    ("path", lambda t: _file(t, "elsewhere/file")),
    ("path", lambda t: _file(t, "database")),  # a name that only starts like the root
    ("link", lambda t: _file(t, "data/out", kind=tarfile.SYMTYPE, link="../elsewhere")),
]


@pytest.mark.parametrize(("reason", "entry"), ROOTED)
async def test_with_a_root_every_entry_and_link_stays_under_it(
    reason: str, entry: Callable[[tarfile.TarFile], None]
) -> None:
    def add(tar: tarfile.TarFile) -> None:
        _volume(tar)
        entry(tar)

    opened: list[Manifest] = []
    guard = TarGuard(most_bytes=10**9, most_entries=100, root="data")
    whole = _tar(_volume)
    archive, _ = await _pack(whole)
    assert b"".join([p async for p in unpack(KEYS, _chunks(archive), guard, opened)]) == whole
    archive, _ = await _pack(_tar(add))
    with pytest.raises(ArchiveRefused) as refused:
        guard = TarGuard(most_bytes=10**9, most_entries=100, root="data")
        b"".join([p async for p in unpack(KEYS, _chunks(archive), guard, [])])
    assert refused.value.details["reason"] == reason


async def test_too_many_entries_or_bytes_are_refused() -> None:
    archive, _ = await _pack(_tar(_volume))
    for limits, reason in (({"most_entries": 3}, "too_many_entries"), ({"most_bytes": 50_000}, "too_large")):
        with pytest.raises(ArchiveRefused) as refused:
            await _unpack(archive, **limits)  # type: ignore[arg-type]
        assert refused.value.details["reason"] == reason


async def test_tampered_foreign_or_lying_archives_are_refused() -> None:
    tar = _tar(_volume)
    archive, manifest = await _pack(tar)
    altered = bytearray(archive)
    altered[len(archive) // 2] ^= 0x40
    other_secret = b"".join([p async for p in pack(StreamKeys("z" * 40), _chunks(tar), FACTS, [])])
    # the same data sealed with the platform's key but a manifest that does not match it, and data that is no zstd
    wrong = Manifest(
        manifest.bot_id, manifest.tenant_id, manifest.image, manifest.tar_bytes, "0" * 64, manifest.created_at
    )
    body = zstandard.ZstdCompressor().compress(tar)
    liar = b"".join([p async for p in seal(KEYS, _chunks(body), wrong.to_json)])
    not_zstd = b"".join([p async for p in seal(KEYS, _chunks(b"plain bytes, not zstd"), manifest.to_json)])
    # one small frame that would open into 64 MiB (`pack` never makes one opening into more than a unit)
    bomb = b"".join([p async for p in seal(KEYS, _chunks(zstandard.compress(bytes(64 << 20))), manifest.to_json)])
    for broken, reason in (
        (bytes(altered), "seal"),
        (archive[:-100], "seal"),
        (other_secret, "seal"),
        (liar, "manifest"),
        (not_zstd, "data"),
        (bomb, "data"),
        (b"", "seal"),
    ):
        with pytest.raises(ArchiveRefused) as refused:
            await _unpack(broken)
        assert refused.value.details["reason"] == reason, broken[:20]


async def test_packing_and_unpacking_hold_a_bounded_buffer_whatever_the_size(tmp_path: Path) -> None:
    size = 48 * 1024 * 1024

    async def big_tar() -> AsyncIterator[bytes]:
        """A tar of one 48 MiB file, made as it is read."""
        info = tarfile.TarInfo("data/blob")
        info.size = size
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        block = os.urandom(1024 * 1024)
        for _ in range(size // len(block)):
            yield block
        yield b"\0" * (tarfile.RECORDSIZE)

    async def read(path: Path) -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            while piece := file.read(1024 * 1024):
                yield piece

    archive = tmp_path / "archive"
    made: list[Manifest] = []
    opened: list[Manifest] = []
    total = 0
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with archive.open("wb") as out:
            async for part in pack(KEYS, big_tar(), FACTS, made):
                out.write(part)
        packing_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        guard = TarGuard(most_bytes=10**10, most_entries=10)
        async for piece in unpack(KEYS, read(archive), guard, opened):
            total += len(piece)
        unpacking_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert opened == made and total == made[0].tar_bytes > size
    assert packing_peak < 8 * 1024 * 1024, packing_peak
    assert unpacking_peak < 8 * 1024 * 1024, unpacking_peak
