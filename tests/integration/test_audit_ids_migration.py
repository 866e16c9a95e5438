"""Revision 0009 gives every existing audit event a random public id and keeps the rows as they were (on both
databases)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection

from wopr_platform.db.engine import create_engine
from wopr_platform.db.migrate import _config, upgrade


async def test_existing_events_get_distinct_random_ids(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)

    def to_0008(connection: Connection) -> None:
        command.upgrade(_config(connection), "0008")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_0008)
            for index in range(50):
                await connection.execute(
                    text(
                        "INSERT INTO audit_events (at, tenant_id, actor, action, status, request_id, duration_ms)"
                        " VALUES (:at, 'default', 'operator', 'DELETE /fleet/bots/{bot_id}', 204, :rid, 1)"
                    ),
                    {"rid": "same" if index % 2 else f"r{index}", "at": datetime(2026, 1, 1, tzinfo=UTC)},
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT id, public_id, request_id, client_request_id FROM audit_events ORDER BY id")
                )
            ).all()
        assert len(rows) == 50
        public = [row[1] for row in rows]
        assert len(set(public)) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", p) for p in public)
        assert [row[0] for row in rows] == list(range(1, 51))
        assert all(row[3] is None for row in rows)
    finally:
        await engine.dispose()
