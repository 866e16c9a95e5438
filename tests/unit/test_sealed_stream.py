"""Sealed streams (crypto/stream.py): what was sealed opens whole; anything altered, cut, reordered, repeated or
moved, or sealed with another secret, does not."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest

from wopr_platform.crypto.stream import (
    FRAME_BYTES,
    HEADER_BYTES,
    SealBroken,
    StreamKeys,
    open_sealed,
    seal,
)

SECRET = "s" * 40
OTHER = "o" * 40


async def _pieces(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    at = 0
    for size in sizes:
        yield data[at : at + size]
        at += size
    if at < len(data):
        yield data[at:]


def _random_sizes(total: int, rng: random.Random) -> list[int]:
    sizes = []
    while sum(sizes) < total:
        sizes.append(rng.choice((1, 7, 4096, FRAME_BYTES - 3, FRAME_BYTES + 11)))
    return sizes


async def _sealed(data: bytes, trailer: bytes, keys: StreamKeys | None = None, sizes: list[int] | None = None) -> bytes:
    out = bytearray()
    pieces = _pieces(data, sizes or _random_sizes(len(data), random.Random(1)))
    async for part in seal(keys or StreamKeys(SECRET), pieces, lambda: trailer):
        out += part
    return bytes(out)


async def _open(sealed: bytes, keys: StreamKeys | None = None, piece: int | None = None) -> tuple[bytes, bytes]:
    trailer: list[bytes] = []
    out = bytearray()
    sizes = [piece] * (len(sealed) // piece + 1) if piece else _random_sizes(len(sealed), random.Random(2))
    async for plain in open_sealed(keys or StreamKeys(SECRET), _pieces(sealed, sizes), trailer):
        out += plain
    return bytes(out), trailer[0]


def _frames(sealed: bytes) -> list[bytes]:
    """The frames of a sealed stream, each with its head."""
    frames, at = [], HEADER_BYTES
    while at < len(sealed):
        length = int.from_bytes(sealed[at + 1 : at + 5], "big")
        frames.append(sealed[at : at + 5 + length])
        at += 5 + length
    return frames


@pytest.mark.parametrize("size", [0, 1, FRAME_BYTES, 3 * FRAME_BYTES + 5])
async def test_what_was_sealed_opens_whole_in_pieces_of_any_size(size: int) -> None:
    """Chunks of any size go in (each sealed in frames of its own); pieces of any size come back in."""
    data = os.urandom(size)
    sealed = await _sealed(data, b'{"manifest":1}')
    assert size < 16 or data not in sealed
    for piece in (None, 1, 5, FRAME_BYTES * 2):
        assert await _open(sealed, piece=piece) == (data, b'{"manifest":1}')


async def test_a_stream_altered_anywhere_does_not_open() -> None:
    sealed = await _sealed(os.urandom(2 * FRAME_BYTES + 100), b"trailer")
    rng = random.Random(3)
    positions = [0, 9, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 3, len(sealed) - 1]
    positions += [rng.randrange(len(sealed)) for _ in range(40)]
    for position in positions:
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(SealBroken):
            await _open(bytes(altered))


async def test_frames_dropped_repeated_reordered_moved_or_cut_do_not_open() -> None:
    whole = [FRAME_BYTES] * 3  # one frame each
    sealed = await _sealed(os.urandom(3 * FRAME_BYTES), b"trailer", sizes=whole)
    header, frames = sealed[:HEADER_BYTES], _frames(sealed)
    assert len(frames) == 4
    other = await _sealed(os.urandom(3 * FRAME_BYTES), b"trailer", sizes=whole)
    broken = [
        header + b"".join(frames[:1] + frames[2:]),  # one dropped
        header + b"".join(frames[:2] + frames[1:]),  # one repeated
        header + b"".join([frames[1], frames[0], *frames[2:]]),  # two swapped
        header + b"".join(frames[:1] + _frames(other)[1:2] + frames[2:]),  # one from another stream
        other[:HEADER_BYTES] + b"".join(frames),  # another stream's header
        header + b"".join(frames[:3]),  # the last frame cut off
        sealed[:-1],  # cut inside the last frame
        sealed + frames[-1],  # something after the last frame
        sealed + b"x",
        b"",
        b"not a sealed stream at all, just some bytes",
    ]
    for stream in broken:
        with pytest.raises(SealBroken):
            await _open(stream)


async def test_another_secret_does_not_open_and_a_previous_one_still_does() -> None:
    sealed = await _sealed(b"data" * 1000, b"trailer", StreamKeys(OTHER))
    with pytest.raises(SealBroken):
        await _open(sealed)
    assert await _open(sealed, StreamKeys(SECRET, previous=[OTHER])) == (b"data" * 1000, b"trailer")
