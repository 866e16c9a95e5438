"""Which replica runs the loops that change the fleet: a PostgreSQL advisory lock elects one leader.

Every replica serves the API and keeps its own view of the engine (events, health, stats); only the leader
repairs drift, checks registries and rolls out updates, so two replicas never act on the same bot. The lock
is session-level and held on a dedicated connection: when the leader's process dies its connection closes and
PostgreSQL releases the lock at once, so another replica takes over within one retry interval. SQLite is the
single-replica embedded default: its one process always leads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


def lock_key(platform_id: str) -> int:
    """A signed 64-bit advisory-lock key per platform id (two platforms may share one database)."""
    digest = hashlib.sha256(f"wopr-platform leader {platform_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Background loop `leader-election`: holds (or keeps trying for) the leader lock.

    `leading` is set while this replica leads; `term_over` is a fresh event per term, set when it ends.
    `decided` is set once the first attempt has an answer (start-up waits for it).
    """

    name = "leader-election"

    def __init__(self, database_url: str, platform_id: str, *, retry: float = RETRY_SECONDS) -> None:
        self._url = database_url
        self._key = lock_key(platform_id)
        self._retry = retry
        self._single = make_url(database_url).get_backend_name() != "postgresql"
        self.leading = asyncio.Event()
        self.decided = asyncio.Event()
        self.term_over = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        if self._single:
            self._begin_term()
            self.decided.set()
            await stop.wait()
            self._end_term()
            return
        # its own engine without a pool: closing the connection (or the process dying) releases the lock
        engine = create_async_engine(self._url, poolclass=NullPool)
        try:
            while not stop.is_set():
                try:
                    async with engine.connect() as connection:
                        if await self._try_lock(connection):
                            self._begin_term()
                            self.decided.set()
                            await self._hold(connection, stop)
                        else:
                            self.decided.set()
                except Exception as err:  # a lost connection ends the term; the lock went with it
                    log.warning("leader election failed; retrying", extra={"reason": type(err).__name__})
                    self.decided.set()
                finally:
                    self._end_term()
                await self._pause(stop)
        finally:
            await engine.dispose()

    async def _try_lock(self, connection: AsyncConnection) -> bool:
        result = await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})
        await connection.commit()
        return bool(result.scalar())

    async def _hold(self, connection: AsyncConnection, stop: asyncio.Event) -> None:
        """Keep the connection (and with it the lock) alive; a failing check ends the term."""
        while not stop.is_set():
            await self._pause(stop)
            await connection.execute(text("SELECT 1"))
            await connection.commit()

    async def _pause(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self._retry):
                await stop.wait()
        except TimeoutError:
            pass

    def _begin_term(self) -> None:
        if not self.leading.is_set():
            self.term_over = asyncio.Event()
            self.leading.set()
            log.info("this replica leads: it runs the reconciler, image updates and routing")

    def _end_term(self) -> None:
        if self.leading.is_set():
            self.leading.clear()
            self.term_over.set()
            log.warning("this replica no longer leads")
