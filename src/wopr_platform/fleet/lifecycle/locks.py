"""Per-bot serialisation: one operation on a bot at a time, queued in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class BotLocks:
    """An asyncio lock per bot id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, bot_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(bot_id, asyncio.Lock())
        self._users[bot_id] = self._users.get(bot_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[bot_id] -= 1
            if self._users[bot_id] == 0:
                del self._users[bot_id]
                del self._locks[bot_id]
