"""What the backups ask of an object store (`objectstore.LocalStore` and `objectstore.S3Store` both are one)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol


class ObjectStore(Protocol):
    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the object once every chunk came (nothing under `key` otherwise); its size in bytes."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes as they are read (NotFound when there is none)."""
        ...

    async def size(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> bool: ...

    async def sweep(self) -> int:
        """Remove what interrupted writes left behind; how many."""
        ...
