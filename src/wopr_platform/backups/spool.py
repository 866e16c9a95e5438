"""A spool between the engine and the archive: a volume's tar stream written to an unnamed temporary file as fast
as the engine sends it, then read back by the packer.

The bot is paused only while the engine reads its files. Spooled, that lasts as long as the engine's read and a
local write, whatever the speed of compression and of the store (a slow S3 upload no longer keeps the bot frozen).
The packing starts once the read ended: run together they compete for the same cores, which lengthens the pause
and shortens nothing. The file has no name (O_TMPFILE where the system has it): a process killed mid-backup leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

from wopr_platform.core.errors import SpoolFailed

READ_BYTES = 256 * 1024  # read back from the spool at a time
WRITE_BYTES = 1024 * 1024  # written to the spool at a time (at least; the last write may be less)


class Spool:
    """One stream's spool: `fill` writes it whole, then `drain` yields it back in order."""

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._fd = -1
        self._written = 0
        self._filled = False

    async def __aenter__(self) -> Spool:
        try:
            handle = await asyncio.to_thread(tempfile.TemporaryFile, dir=self._directory)
        except OSError as err:
            raise SpoolFailed("no spool file for the backup", details={"reason": err.strerror or "os error"}) from None
        self._fd = os.dup(handle.fileno())
        handle.close()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        os.close(self._fd)

    async def fill(self, source: AsyncIterator[bytes]) -> None:
        """Write `source` to the spool to its end (closing it whatever happens, so its own cleanup runs now)."""
        pending = bytearray()  # the engine's small reads, written together (a thread's hop per MiB, not per read)
        try:
            async for chunk in source:
                pending += chunk
                if len(pending) >= WRITE_BYTES:
                    await self._write(pending)
                    pending.clear()
            await self._write(pending)
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        self._filled = True

    async def _write(self, data: bytearray) -> None:
        try:
            await asyncio.to_thread(_write_all, self._fd, data, self._written)
        except OSError as err:  # the disk is full, most likely
            raise SpoolFailed(
                "the backup's spool could not be written", details={"reason": err.strerror or "os error"}
            ) from None
        self._written += len(data)

    async def drain(self) -> AsyncIterator[bytes]:
        """What `fill` wrote, in order."""
        if not self._filled:
            raise RuntimeError("the spool is read back only once it was filled whole")
        for offset in range(0, self._written, READ_BYTES):
            yield await asyncio.to_thread(os.pread, self._fd, min(READ_BYTES, self._written - offset), offset)


def _write_all(fd: int, data: bytearray, offset: int) -> None:
    with memoryview(data) as whole:  # released on return: the caller clears `data` for the next write
        view = whole
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
