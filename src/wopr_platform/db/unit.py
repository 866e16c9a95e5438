"""The one way code opens a database session, named by who owns its transaction.

- `read()`: a read; the session is rolled back when it closes, so it writes nothing and counts as no commit.
- `unit()`: one unit of work of a request or of a background job's round; everything it writes commits together
  when it ends without an error, or not at all.
- `step()`: the one exception, a durable step of a journaled operation: committed at once, because the next thing
  the operation does is a Docker call that must find the intent (or the stored outcome) already on disk.

No service calls `session.begin()` or `commit()` itself (a test holds the source to that).

On SQLite, a process's writers take turns (see `Database._write_turn`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# whether this task (or the task that started it) holds the write turn
_HOLDING_TURN: ContextVar[bool] = ContextVar("wopr_db_write_turn", default=False)
TURN_WAIT = 2.0  # seconds a writer waits for its turn before it goes ahead anyway


class Database:
    """Sessions of one database, handed out by transaction owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._turns = asyncio.Lock() if bind is not None and bind.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """SQLite has one writer at a time, and a writer that finds the database locked sleeps in growing steps
        (up to 100 ms each) before it tries again, so under load a write waits far longer than the writes before
        it take. The process's own writers therefore take turns, first come first served. A unit opened within
        one that holds the turn (in its task or a task it started) does not wait for it, and a writer that waited
        `TURN_WAIT` goes ahead: SQLite's own locking still holds, the turn only orders the waiting."""
        if self._turns is None or _HOLDING_TURN.get():
            yield
            return
        try:
            async with asyncio.timeout(TURN_WAIT):
                await self._turns.acquire()
        except TimeoutError:
            yield
            return
        token = _HOLDING_TURN.set(True)
        try:
            yield
        finally:
            _HOLDING_TURN.reset(token)
            self._turns.release()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only (rolled back at the end)."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends without an error, rolled back otherwise."""
        async with self._write_turn(), self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def step(self) -> AsyncIterator[AsyncSession]:
        """A durable step of a journaled operation: committed before the operation touches Docker again."""
        async with self._write_turn(), self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> str | None:
        """None when the database answers a trivial query, else the kind of error that stopped it."""
        try:
            async with self.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception as err:  # any driver error means "not ready"
            return type(err).__name__
        return None
