"""Revision 0006 gives every existing bot a subdomain: its name when that is a valid, free label, else its id."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from wopr_platform.db.engine import create_engine
from wopr_platform.db.migrate import _config, upgrade

BOTS = [  # (id, tenant, name) in creation order
    ("00000000-0000-4000-8000-000000000001", "default", "Support_Bot"),
    ("00000000-0000-4000-8000-000000000002", "default", "api"),
    ("00000000-0000-4000-8000-000000000003", "default", "bot_"),
    ("00000000-0000-4000-8000-000000000004", "default", "twin"),
    ("00000000-0000-4000-8000-000000000005", "other", "twin"),
    ("00000000-0000-4000-8000-000000000006", "other", "xn--abc"),
]


async def test_existing_bots_get_their_name_or_their_id(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")

    def to_0005(connection: Connection) -> None:
        command.upgrade(_config(connection), "0005")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_0005)
            for index, (bot_id, tenant, name) in enumerate(BOTS):
                await connection.execute(
                    text(
                        "INSERT INTO bots (id, tenant_id, name, description, image, env, restart_policy, volume_name,"
                        " release_channel, update_policy, desired_state, created_at, updated_at) VALUES"
                        " (:id, :tenant, :name, '', 'img', '{}', 'no', :volume, 'stable', 'manual', 'running',"
                        " :at, :at)"
                    ),
                    {
                        "id": bot_id,
                        "tenant": tenant,
                        "name": name,
                        "volume": f"v{index}",
                        "at": f"2026-01-0{index + 1}",
                    },
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, subdomain FROM bots ORDER BY created_at"))).all()
            assert [row[1] for row in rows] == [
                "support-bot",
                BOTS[1][0],  # reserved
                BOTS[2][0],  # not a valid label
                "twin",
                BOTS[4][0],  # taken by the older bot of another tenant
                BOTS[5][0],  # punycode
            ]
        with pytest.raises(IntegrityError):  # unique across tenants from now on
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE bots SET subdomain = 'twin' WHERE id = :id"), {"id": BOTS[0][0]})
    finally:
        await engine.dispose()
