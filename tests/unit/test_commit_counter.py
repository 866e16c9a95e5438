"""A cached read knows when its rows may be out of date: the commit counter counts every commit, or only those that
wrote to the tables the cache holds rows of (a statement given as text is taken to write to every table)."""

from __future__ import annotations

import contextlib

from sqlalchemy import Column, MetaData, String, Table, insert, text, update

from wopr_platform.db.engine import CommitCounter, create_engine

METADATA = MetaData()
BOTS = Table("bots", METADATA, Column("id", String, primary_key=True))
OTHER = Table("other", METADATA, Column("id", String, primary_key=True))


async def test_commits_are_counted_by_the_tables_they_wrote_to() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    bots, every = CommitCounter(engine, tables={"bots"}), CommitCounter(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
        seen = (bots.value, every.value)

        async def step(*statements: object) -> tuple[int, int]:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(statement)  # type: ignore[call-overload]
            return bots.value - seen[0], every.value - seen[1]

        assert await step(insert(OTHER).values(id="a")) == (0, 1)  # another table
        assert await step(text("SELECT 1")) == (0, 2)  # a read
        assert await step(insert(BOTS).values(id="a")) == (1, 3)
        assert await step(update(BOTS).values(id="b")) == (2, 4)
        assert await step(text("UPDATE bots SET id = 'c'")) == (3, 5)  # text: the table is not known
        assert await step(insert(OTHER).values(id="b"), insert(BOTS).values(id="d")) == (4, 6)

        with contextlib.suppress(RuntimeError):  # a write rolled back is no change
            async with engine.begin() as connection:
                await connection.execute(insert(BOTS).values(id="e"))
                raise RuntimeError
        assert await step(text("SELECT 1")) == (4, 7)
    finally:
        await engine.dispose()
