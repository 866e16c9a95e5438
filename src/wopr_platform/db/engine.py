"""The database engine: SQLite (WAL) by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession


def create_engine(url: str) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, a busy timeout and foreign keys on every connection.

    Statement parameters hold bot env values (secrets among them), so they are kept out of logs and errors:
    SQLAlchemy hides them, and aiosqlite (which logs each call with its parameters at debug) is held at warning.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sqlite_sync_engine(engine: AsyncEngine) -> Engine:
    """A synchronous engine on the same SQLite database (the standard library's driver), with the same pragmas:
    for a thread that runs whole units of work by itself (`Database.core_unit`)."""
    sync = create_sync_engine(
        engine.url.set(drivername="sqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},
        hide_parameters=True,
        pool_size=1,
        max_overflow=0,
    )
    event.listen(sync, "connect", _sqlite_pragmas)
    return sync


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


class CommitCounter:
    """Counts commits through one engine, so a reader can tell whether rows it cached may be out of date."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.value = 0
        event.listen(engine.sync_engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        self.value += 1
