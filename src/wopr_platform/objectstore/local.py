"""Objects kept as files under one directory, written whole or not at all.

Keys are checked (`keys.checked`), so a key never names a path outside the directory. `put` streams into a
temporary file of the directory, flushes it to disk and renames it over the key only when the stream ended without
an error, so a reader sees an object whole or not at all, and a crash leaves at most a temporary file (`sweep`
removes them). File work runs on a thread, one chunk at a time.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from io import BufferedWriter
from pathlib import Path

from wopr_platform.core.errors import NotFound
from wopr_platform.objectstore.keys import READ_CHUNK, checked

_TEMPORARY = ".part-"
STALE_WRITE = timedelta(hours=1)  # a temporary file untouched this long belongs to a write that died


class LocalStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        return self._root / checked(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store what `chunks` bring under `key` (replacing what was there), once they all came; the size."""
        path = self._path(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        temporary = path.parent / f"{_TEMPORARY}{uuid.uuid4().hex}"
        file = await asyncio.to_thread(temporary.open, "xb")
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(file.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(_flush, file)
            file.close()
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            file.close()
            await asyncio.to_thread(temporary.unlink, missing_ok=True)
            raise
        return size

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, a chunk at a time (NotFound when there is none)."""
        path = self._path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound("no such object", details={"key": key}) from None
        try:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk
        finally:
            file.close()

    async def size(self, key: str) -> int | None:
        """The object's size; None when there is none."""
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> bool:
        """Remove the object; whether there was one."""
        try:
            await asyncio.to_thread(self._path(key).unlink)
        except FileNotFoundError:
            return False
        return True

    async def sweep(self, older_than: timedelta = STALE_WRITE) -> int:
        """Remove the temporary files writes that never ended left behind: untouched for `older_than` (a write in
        progress touches its file all along)."""

        def remove() -> int:
            removed = 0
            cutoff = time.time() - older_than.total_seconds()
            for leftover in self._root.glob(f"*/{_TEMPORARY}*"):
                try:
                    if leftover.stat().st_mtime < cutoff:
                        leftover.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        if not self._root.exists():
            return 0
        return await asyncio.to_thread(remove)


def _flush(file: BufferedWriter) -> None:
    file.flush()
    os.fsync(file.fileno())
