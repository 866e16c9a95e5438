"""On SQLite a process's writers take turns (db/unit.py): first come first served, never overlapping, without
deadlocking a unit opened within another."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.unit import TURN_WAIT, Database


async def test_writers_take_turns_in_the_order_they_came(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    db = Database(create_sessionmaker(engine))
    async with db.unit() as session:
        await session.execute(text("CREATE TABLE t (n INTEGER)"))
    inside = 0
    most = 0
    order: list[int] = []

    async def write(n: int) -> None:
        nonlocal inside, most
        async with db.unit() as session:
            inside += 1
            most = max(most, inside)
            order.append(n)
            await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.01)  # the unit holds SQLite's write lock across an await
            inside -= 1

    try:
        writers = []
        for n in range(20):
            writers.append(asyncio.create_task(write(n)))
            await asyncio.sleep(0)  # each starts waiting before the next comes
        await asyncio.gather(*writers)
        assert most == 1 and order == list(range(20))
        async with db.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 20
    finally:
        await engine.dispose()


async def test_a_unit_within_a_unit_does_not_wait_for_the_turn_its_own_task_holds(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'nested.db'}")
    db = Database(create_sessionmaker(engine))
    try:
        started = time.monotonic()
        async with db.unit() as outer:
            await outer.execute(text("SELECT 1"))
            async with db.unit() as inner:  # in this task
                await inner.execute(text("CREATE TABLE a (n INTEGER)"))

            async def helper() -> None:  # in a task it started
                async with db.step() as session:
                    await session.execute(text("CREATE TABLE b (n INTEGER)"))

            await asyncio.create_task(helper())
        assert time.monotonic() - started < TURN_WAIT
    finally:
        await engine.dispose()


async def test_a_core_unit_commits_or_rolls_back_whole_and_takes_its_turn_with_the_others(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'core.db'}")
    db = Database(create_sessionmaker(engine))
    async with db.unit() as session:
        await session.execute(text("CREATE TABLE t (n INTEGER)"))

    def insert(n: int, fail: bool = False) -> Callable[[Connection], int]:
        def work(connection: Connection) -> int:
            connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            if fail:
                raise ValueError("the unit fails after its insert")
            return n

        return work

    async def slow_unit(n: int) -> None:
        async with db.unit() as session:
            await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            await asyncio.sleep(0.01)  # holds SQLite's write lock across an await

    try:
        assert await db.core_unit(insert(1)) == 1
        with pytest.raises(ValueError):
            await db.core_unit(insert(2, fail=True))
        # interleaved with async units that hold the write lock across awaits: none waits on SQLite's lock
        started = time.monotonic()
        await asyncio.gather(*(db.core_unit(insert(n)) if n % 2 else slow_unit(n) for n in range(10, 40)))
        assert time.monotonic() - started < 5
        async with db.read() as session:
            found = sorted((await session.execute(text("SELECT n FROM t"))).scalars())
        assert found == [1, *range(10, 40)]  # 2 was rolled back
    finally:
        db.close()
        await engine.dispose()


async def test_a_core_read_runs_on_the_loop_sees_every_commit_and_reads_a_locked_database_elsewhere(
    tmp_path: Path,
) -> None:
    """On SQLite a core read runs at once on the event loop's thread (WAL: it does not wait for a writer); if the
    database is locked all the same, it goes through the async engine (which waits for the lock) instead."""
    path = tmp_path / "read.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    db = Database(create_sessionmaker(engine))
    async with db.unit() as session:
        await session.execute(text("CREATE TABLE t (n INTEGER)"))
    threads: list[int] = []

    def numbers(connection: Connection) -> list[int]:
        threads.append(threading.get_ident())
        return list(connection.execute(text("SELECT n FROM t ORDER BY n")).scalars())

    try:
        for n in range(3):
            async with db.unit() as session:
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            assert await db.core_read(numbers) == list(range(n + 1))
        async with db.unit() as session:  # a writer holding the write lock does not hold up a reader
            await session.execute(text("INSERT INTO t VALUES (9)"))
            assert await db.core_read(numbers) == [0, 1, 2]
        assert threads == [threading.get_ident()] * 4

        # a lock held elsewhere all the same (a checkpoint): the read goes through aiosqlite's thread
        class Locked:
            tried = 0

            def connect(self) -> None:
                self.tried += 1
                raise OperationalError("SELECT", None, sqlite3.OperationalError("database is locked"))

            def dispose(self) -> None:
                pass

        locked = Locked()
        db._reader = cast(Engine, locked)
        assert await db.core_read(numbers) == [0, 1, 2, 9]
        assert locked.tried == 1 and len(threads) == 5
    finally:
        db.close()
        await engine.dispose()
