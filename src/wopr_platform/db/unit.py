"""The one way code opens a database session, named by who owns its transaction.

- `read()`: a read; the session is rolled back when it closes, so it writes nothing and counts as no commit.
- `unit()`: one unit of work of a request or of a background job's round; everything it writes commits together
  when it ends without an error, or not at all.
- `step()`: the one exception, a durable step of a journaled operation: committed at once, because the next thing
  the operation does is a Docker call that must find the intent (or the stored outcome) already on disk.

No service calls `session.begin()` or `commit()` itself (a test holds the source to that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class Database:
    """Sessions of one database, handed out by transaction owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (rolled back at the end)."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends without an error, rolled back otherwise."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def step(self) -> AsyncIterator[AsyncSession]:
        """A durable step of a journaled operation: committed before the operation touches Docker again."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> str | None:
        """None when the database answers a trivial query, else the kind of error that stopped it."""
        try:
            async with self.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception as err:  # any driver error means "not ready"
            return type(err).__name__
        return None
