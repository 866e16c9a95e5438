"""The one way code opens a database session, named by who owns its transaction.

- `read()`: a read; the session is rolled back when it closes, so it writes nothing and counts as no commit.
- `unit()`: one unit of work of a request or of a background job's round; everything it writes commits together
  when it ends without an error, or not at all.
- `step()`: the one exception, a durable step of a journaled operation: committed at once, because the next thing
  the operation does is a Docker call that must find the intent (or the stored outcome) already on disk.

- `core_unit(work)`: a unit of work given as a function of a (synchronous) Core connection, for a hot path's
  writes: on SQLite it runs whole on a thread of its own, one hop from the event loop instead of one per statement.
- `core_read(work)`: a read given the same way, for a hot path's reads: on SQLite it runs at once on the event
  loop's thread, no hop at all.

No service calls `session.begin()` or `commit()` itself (a test holds the source to that).

On SQLite, a process's writers take turns (see `Database._write_turn`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wopr_platform.db.engine import create_reader_engine, create_sqlite_sync_engine

T = TypeVar("T")

# whether this task (or the task that started it) holds the write turn
_HOLDING_TURN: ContextVar[bool] = ContextVar("wopr_db_write_turn", default=False)
TURN_WAIT = 2.0  # seconds a writer waits for its turn before it goes ahead anyway
READ_BUSY_MS = 50  # how long a read on the event loop waits for a lock before it goes through aiosqlite instead


class Database:
    """Sessions of one database, handed out by transaction owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._engine: AsyncEngine | None = bind
        self._turns = asyncio.Lock() if bind is not None and bind.dialect.name == "sqlite" else None
        self._sync: tuple[Engine, ThreadPoolExecutor] | None = None  # core_unit's engine and thread (SQLite)
        self._reader: Engine | None = None  # core_read's engine (SQLite)
        self._async_reader: AsyncEngine | None = None  # core_read's engine (PostgreSQL)

    async def core_read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` with a Core connection that only reads (rolled back at the end); what it returns.

        On SQLite it runs at once on the event loop's thread, with a connection of its own: in WAL mode a reader
        never waits for the writer, and a short read costs less than the hops through aiosqlite's thread, each of
        which waits for the OS to schedule a thread when the machine is busy. The rare wait for a lock (a
        checkpoint) is bounded by READ_BUSY_MS, after which the read runs on the async engine instead.

        On PostgreSQL it runs on connections of its own in autocommit, checked out without a ping: one round trip
        for a query, where a session's checkout, BEGIN and ROLLBACK add three, each waiting for the server's
        process to be scheduled. A connection found broken (the server restarted) is dropped and the read runs
        again on the main engine, which pings before it hands out a connection."""
        assert self._engine is not None, "core_read needs sessions bound to an engine"
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            if self._reader is None:
                self._reader = create_sqlite_sync_engine(self._engine, busy_ms=READ_BUSY_MS)
            try:
                with self._reader.connect() as connection:
                    return work(connection)
            except OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
        elif dialect == "postgresql":
            if self._async_reader is None:
                self._async_reader = create_reader_engine(self._engine)
            try:
                async with self._async_reader.connect() as connection:
                    return await connection.run_sync(work)
            except DBAPIError as err:
                if not err.connection_invalidated:
                    raise
        async with self._engine.connect() as connection:
            return await connection.run_sync(work)

    async def core_unit(self, work: Callable[[Connection], T]) -> T:
        """Run `work` with a Core connection in one transaction, committed when it returns (rolled back if it
        raises); what it returns. On SQLite the whole unit runs on a thread of its own with a connection of its
        own, in the process's write turn: one hop from the event loop, where an async session makes one per
        statement, each waiting behind whatever else the loop has to do. Elsewhere it runs on the async engine
        (PostgreSQL's round trips are the loop's own I/O)."""
        assert self._engine is not None, "core_unit needs sessions bound to an engine"
        if self._turns is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        if self._sync is None:
            self._sync = (
                create_sqlite_sync_engine(self._engine),
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="wopr-db-unit"),
            )
        engine, thread = self._sync
        async with self._write_turn():
            running = asyncio.get_running_loop().run_in_executor(thread, _run, engine, work)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                await asyncio.wait({running})  # the unit runs to its end on its thread; the turn waits for it
                raise

    async def dispose(self) -> None:
        """Close what `core_unit` and `core_read` opened (at shutdown, after the last unit)."""
        if self._async_reader is not None:
            await self._async_reader.dispose()
            self._async_reader = None
        self.close()

    def close(self) -> None:
        """Close what `core_unit` and the SQLite `core_read` opened."""
        if self._reader is not None:
            self._reader.dispose()
            self._reader = None
        if self._sync is not None:
            engine, thread = self._sync
            self._sync = None
            thread.shutdown(wait=True)
            engine.dispose()

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


def _run(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.begin() as connection:
        return work(connection)
