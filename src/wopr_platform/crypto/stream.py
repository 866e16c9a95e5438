"""Streams sealed in frames: AES-256-GCM over bounded chunks, for data too large to hold in memory (backups).

A sealed stream is a header and then frames:

    header  MAGIC (8 bytes) | key id (8 ASCII characters) | salt (16 random bytes)
    frame   kind (1 byte: 0 data, 1 last) | length (4 bytes, big-endian) | ciphertext and tag (`length` bytes)

Each stream has a key of its own, derived (HKDF) from the platform's secret and the stream's salt. Frame n is sealed
with the nonce n (12 bytes, big-endian) and bound (associated data) to the header, n and its kind, so a frame cannot
be altered, dropped, repeated, reordered or moved into another stream, and a stream cut short is refused: the
last frame is marked, and it carries the stream's trailer (for a backup, its manifest), authenticated like the rest.
A frame holds at most FRAME_BYTES of plaintext, so sealing or opening a stream of any size holds one frame at a time.
Streams sealed under a previous secret (`PLATFORM_SECRET_PREVIOUS`) still open.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wopr_platform.core.settings import MIN_SECRET_BYTES

MAGIC = b"WOPRSS1\n"
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + 8 + SALT_BYTES
FRAME_BYTES = 256 * 1024  # plaintext in one frame at most
_FRAME_HEAD = struct.Struct(">BI")  # kind, length
_TAG_BYTES = 16
DATA, LAST = 0, 1


class SealBroken(ValueError):
    """A sealed stream that does not open: another secret, altered, cut short, or not a sealed stream at all."""


def _master(secret: str) -> bytes:
    material = secret.encode()
    if len(material) < MIN_SECRET_BYTES:
        raise ValueError(f"the platform secret must be at least {MIN_SECRET_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"wopr-platform", info=b"sealed streams v1").derive(material)


def _key_id(master: bytes) -> bytes:
    return hashlib.sha256(b"stream key id" + master).hexdigest()[:8].encode()


def _stream_key(master: bytes, salt: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"sealed stream").derive(master))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header: bytes, index: int, kind: int) -> bytes:
    return header + index.to_bytes(8, "big") + bytes([kind])


class StreamKeys:
    """The platform's keys for sealed streams: the current secret seals, it and the previous ones open."""

    def __init__(self, secret: str, previous: Iterable[str] = ()) -> None:
        current = _master(secret)
        self._current = (_key_id(current), current)
        self._masters = {self._current[0]: current}
        for old in previous:
            master = _master(old)
            self._masters.setdefault(_key_id(master), master)

    def sealer(self) -> StreamSealer:
        key_id, master = self._current
        salt = os.urandom(SALT_BYTES)
        return StreamSealer(MAGIC + key_id + salt, _stream_key(master, salt))

    def opener(self) -> StreamOpener:
        return StreamOpener(self._masters)


class StreamSealer:
    """Seals one stream: `header`, then `frame` for each chunk, then `last` with the trailer."""

    def __init__(self, header: bytes, key: AESGCM) -> None:
        self.header = header
        self._key = key
        self._index = 0
        self._done = False

    def frame(self, plaintext: bytes, kind: int = DATA) -> bytes:
        if self._done:
            raise RuntimeError("the stream is sealed already")
        if len(plaintext) > FRAME_BYTES:
            raise ValueError(f"a frame holds at most {FRAME_BYTES} bytes")
        sealed = self._key.encrypt(_nonce(self._index), plaintext, _aad(self.header, self._index, kind))
        self._index += 1
        self._done = kind == LAST
        return _FRAME_HEAD.pack(kind, len(sealed)) + sealed

    def last(self, trailer: bytes) -> bytes:
        return self.frame(trailer, LAST)


async def seal(keys: StreamKeys, chunks: AsyncIterable[bytes], trailer: Callable[[], bytes]) -> AsyncIterator[bytes]:
    """`chunks` sealed as they come, each in frames of its own (split at FRAME_BYTES, never merged with the next,
    so a reader gets back the chunks' boundaries), ending with the frame of `trailer()`, asked for once every chunk
    has passed."""
    sealer = keys.sealer()
    yield sealer.header
    async for chunk in chunks:
        for at in range(0, len(chunk), FRAME_BYTES):
            yield sealer.frame(chunk[at : at + FRAME_BYTES])
    yield sealer.last(trailer())


class StreamOpener:
    """Opens one stream fed in pieces of any size: `feed` answers the plaintext of the frames complete so far;
    `trailer` (at the end) the last frame's. Raises SealBroken at the first thing wrong."""

    def __init__(self, masters: dict[bytes, bytes]) -> None:
        self._masters = masters
        self._buffer = bytearray()
        self._header: bytes | None = None
        self._key: AESGCM | None = None
        self._index = 0
        self._trailer: bytes | None = None

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        if self._header is None:
            if len(self._buffer) < HEADER_BYTES:
                if not MAGIC.startswith(bytes(self._buffer[: len(MAGIC)])):
                    raise SealBroken("not a sealed stream")
                return out
            self._open_header(bytes(self._buffer[:HEADER_BYTES]))
            del self._buffer[:HEADER_BYTES]
        while len(self._buffer) >= _FRAME_HEAD.size:
            kind, length = _FRAME_HEAD.unpack_from(self._buffer)
            if kind not in (DATA, LAST) or not _TAG_BYTES <= length <= FRAME_BYTES + _TAG_BYTES:
                raise SealBroken("a frame of the stream is malformed")
            if self._trailer is not None:
                raise SealBroken("the stream goes on after its last frame")
            if len(self._buffer) < _FRAME_HEAD.size + length:
                break
            sealed = bytes(self._buffer[_FRAME_HEAD.size : _FRAME_HEAD.size + length])
            del self._buffer[: _FRAME_HEAD.size + length]
            plaintext = self._open_frame(sealed, kind)
            if kind == LAST:
                self._trailer = plaintext
            else:
                out.append(plaintext)
        if self._trailer is not None and self._buffer:
            raise SealBroken("the stream goes on after its last frame")
        return out

    def _open_header(self, header: bytes) -> None:
        if not header.startswith(MAGIC):
            raise SealBroken("not a sealed stream")
        key_id, salt = header[len(MAGIC) : len(MAGIC) + 8], header[len(MAGIC) + 8 :]
        master = self._masters.get(key_id)
        if master is None:
            raise SealBroken("the stream was sealed with a secret this platform does not have")
        self._header = header
        self._key = _stream_key(master, salt)

    def _open_frame(self, sealed: bytes, kind: int) -> bytes:
        assert self._key is not None and self._header is not None
        try:
            plaintext = self._key.decrypt(_nonce(self._index), sealed, _aad(self._header, self._index, kind))
        except InvalidTag:
            raise SealBroken("the stream was altered (a frame does not authenticate)") from None
        self._index += 1
        return plaintext

    def trailer(self) -> bytes:
        """The last frame's plaintext, once the whole stream was fed (SealBroken if it was cut short)."""
        if self._trailer is None:
            raise SealBroken("the stream was cut short (no last frame)")
        return self._trailer


async def open_sealed(keys: StreamKeys, pieces: AsyncIterable[bytes], trailer: list[bytes]) -> AsyncIterator[bytes]:
    """The plaintext of a sealed stream as it opens; once it is whole, its trailer is appended to `trailer`.
    SealBroken (raised while iterating) for anything wrong, the end included: a consumer must treat what it
    received as untrusted until the iteration ended without an error."""
    opener = keys.opener()
    async for piece in pieces:
        for plaintext in opener.feed(piece):
            yield plaintext
    trailer.append(opener.trailer())
