"""Apply the Alembic migrations (at start-up and from `wopr-platform migrate`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "wopr_platform.db:migrations")
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; a no-op when it already is."""

    def _run(connection: Connection) -> None:
        command.upgrade(_config(connection), "heads")

    async with engine.begin() as connection:
        await connection.run_sync(_run)
