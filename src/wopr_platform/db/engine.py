"""The database engine: SQLite (WAL) by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

BUSY_MS = 30_000  # how long a SQLite connection waits for a lock


def create_engine(url: str, *, replica: str | None = None) -> AsyncEngine:
    """Build the async engine; SQLite gets WAL, a busy timeout and foreign keys on every connection.

    Statement parameters hold bot env values (secrets among them), so they are kept out of logs and errors:
    SQLAlchemy hides them, and aiosqlite (which logs each call with its parameters at debug) is held at warning.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # `replica` names this process on each of its connections (REPLICA_SETTING), so the notifications its own
        # changes cause are known for its own (see `Broadcast`)
        settings = {REPLICA_SETTING: replica} if replica else {}
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            hide_parameters=True,
            connect_args={"server_settings": settings} if settings else {},
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    engine = create_async_engine(url, connect_args={"timeout": BUSY_MS / 1000}, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas(BUSY_MS))
    return engine


def create_reader_engine(engine: AsyncEngine) -> AsyncEngine:
    """Connections for a hot path's reads on PostgreSQL (`Database.core_read`): autocommit (no BEGIN, no ROLLBACK),
    no ping at checkout, nothing sent when a connection goes back to the pool."""
    return create_async_engine(
        engine.url,
        isolation_level="AUTOCOMMIT",
        pool_size=2,
        max_overflow=4,
        pool_pre_ping=False,
        pool_reset_on_return=None,
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": READER_APPLICATION_NAME}},
    )


REPLICA_SETTING = "wopr.replica"  # a session setting: the replica whose connection it is (migration 0020's trigger)
READER_APPLICATION_NAME = "wopr-reader"  # how the readers' connections show in pg_stat_activity


def create_sqlite_sync_engine(engine: AsyncEngine, *, busy_ms: int = BUSY_MS) -> Engine:
    """A synchronous engine on the same SQLite database (the standard library's driver), with the same pragmas:
    for a thread that runs whole units of work by itself (`Database.core_unit`), or for reads run at once on the
    event loop (`Database.core_read`), which wait `busy_ms` at most for a lock."""
    sync = create_sync_engine(
        engine.url.set(drivername="sqlite"),
        connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
        hide_parameters=True,
        pool_size=1,
        max_overflow=0,
    )
    event.listen(sync, "connect", _sqlite_pragmas(busy_ms))
    return sync


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    """What every SQLite connection is set to when it opens; it waits `busy_ms` at most for a lock."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


class CommitCounter:
    """Counts commits through one engine, so a reader can tell whether rows it cached may be out of date: every
    commit, or (given `tables`) only those whose transaction wrote to one of them. A statement given as text names
    no table SQLAlchemy knows of: one that writes is counted as writing to every table."""

    def __init__(self, engine: AsyncEngine, tables: Collection[str] | None = None) -> None:
        self.value = 0
        self._tables = frozenset(tables) if tables is not None else None
        self._flag = f"wopr_wrote_{id(self)}"  # on the connection: its transaction wrote to one of the tables
        sync = engine.sync_engine
        event.listen(sync, "commit", self._on_commit)
        if self._tables is not None:
            event.listen(sync, "after_cursor_execute", self._on_execute)
            event.listen(sync, "rollback", self._on_rollback)

    def _on_execute(
        self, connection: Connection, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        assert self._tables is not None
        compiled = getattr(context, "compiled", None)
        table = getattr(getattr(compiled, "statement", None), "table", None)
        if table is not None and (context.isinsert or context.isupdate or context.isdelete):
            wrote = getattr(table, "name", None) in self._tables
        else:
            wrote = table is None and statement.lstrip()[:7].upper().startswith(WRITING_VERBS)
        if wrote:
            connection.info[self._flag] = True

    def _on_rollback(self, connection: Connection) -> None:
        connection.info.pop(self._flag, None)

    def _on_commit(self, connection: Connection) -> None:
        if self._tables is None or connection.info.pop(self._flag, False):
            self.value += 1


WRITING_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE")
